# blender-jobs test fixture: remesh the first passed mesh object.
#
# Reads:   passed_data_blocks (needs at least one mesh object),
#          duration (optional global, seconds of total sleep spread over the steps; default 1.0)
# Returns: python_data = {"pi": 3.14159, "vertices": <vertex count of the new mesh>, "name": <new object name>}
#          data_blocks = [<new object "<orig>_remeshed">]
import time

import bpy

STEPS = 5
total_sleep = float(globals().get("duration", 1.0))

source = None
for block in passed_data_blocks:
    if isinstance(block, bpy.types.Object) and block.type == 'MESH':
        source = block
        break
if source is None:
    raise RuntimeError("remesh.py needs a mesh object in passed_data_blocks")

update_job_progress(0.0, "adding remesh modifier")
modifier = source.modifiers.new(name="FixtureRemesh", type='REMESH')
# VOXEL mode also remeshes open surfaces such as a plane; it needs OpenVDB, which every
# official Blender build has. A build without it gives an empty result: fall back to
# BLOCKS (octree) mode then, which only remeshes closed volumes.
modifier.mode = 'VOXEL'
modifier.voxel_size = 0.25
modifier.use_remove_disconnected = False
time.sleep(total_sleep / STEPS)


def evaluate():
    depsgraph = bpy.context.evaluated_depsgraph_get()
    depsgraph.update()
    return bpy.data.meshes.new_from_object(source.evaluated_get(depsgraph))


update_job_progress(0.2, "evaluating")
new_mesh = evaluate()
if len(new_mesh.vertices) == 0:
    bpy.data.meshes.remove(new_mesh)
    modifier.mode = 'BLOCKS'
    modifier.octree_depth = 3
    new_mesh = evaluate()
time.sleep(total_sleep / STEPS)

update_job_progress(0.4, "building new mesh")
new_mesh.name = source.name + "_remeshed"
time.sleep(total_sleep / STEPS)

update_job_progress(0.6, "creating object")
# Leave the passed object as it came in.
source.modifiers.remove(modifier)
new_obj = bpy.data.objects.new(source.name + "_remeshed", new_mesh)
new_obj.matrix_world = source.matrix_world.copy()
bpy.context.scene.collection.objects.link(new_obj)
time.sleep(total_sleep / STEPS)

update_job_progress(0.8, "collecting results")
python_data = {"pi": 3.14159, "vertices": len(new_mesh.vertices), "name": new_obj.name}
data_blocks = [new_obj]
time.sleep(total_sleep / STEPS)
update_job_progress(1.0, "done")
