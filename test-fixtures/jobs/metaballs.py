# blender-jobs test fixture: one metaball element per vertex of the first passed mesh
# object, converted to a mesh.
#
# Reads:   passed_data_blocks (needs at least one mesh object; use a small one such as "Tetra"),
#          delay (optional global, seconds slept per vertex; default 1.0)
# Reports: progress only after each vertex (sparse: one report per `delay` seconds)
# Returns: python_data = {"elements": <metaball elements>, "vertices": <vertices of the resulting mesh>}
#          data_blocks = [<mesh object "<orig>_metaballs">]
import time

import bpy

delay = float(globals().get("delay", 1.0))

source = None
for block in passed_data_blocks:
    if isinstance(block, bpy.types.Object) and block.type == 'MESH':
        source = block
        break
if source is None:
    raise RuntimeError("metaballs.py needs a mesh object in passed_data_blocks")

scene = bpy.context.scene
world = source.matrix_world
vertex_count = len(source.data.vertices)

mb = bpy.data.metaballs.new(source.name + "_mball")
mb.resolution = 0.2
mb.render_resolution = 0.2
mb.threshold = 0.6
# The metaball object is only a helper for the conversion; it is removed at the end.
mb_obj = bpy.data.objects.new(source.name + "_mball", mb)
scene.collection.objects.link(mb_obj)

for index, vertex in enumerate(source.data.vertices):
    element = mb.elements.new()  # type 'BALL'
    element.co = world @ vertex.co
    element.radius = 1.0
    time.sleep(delay)
    update_job_progress((index + 1) / float(vertex_count + 1),
                        "element %d of %d" % (index + 1, vertex_count))

depsgraph = bpy.context.evaluated_depsgraph_get()
depsgraph.update()
evaluated = mb_obj.evaluated_get(depsgraph)
mesh = bpy.data.meshes.new_from_object(evaluated)
mesh.name = source.name + "_metaballs"
if len(mesh.vertices) == 0:
    raise RuntimeError("metaball conversion produced an empty mesh")

mesh_obj = bpy.data.objects.new(source.name + "_metaballs", mesh)
scene.collection.objects.link(mesh_obj)

elements = len(mb.elements)
bpy.data.objects.remove(mb_obj)
bpy.data.metaballs.remove(mb)
update_job_progress(1.0, "converted")

python_data = {"elements": elements, "vertices": len(mesh.vertices)}
data_blocks = [mesh_obj]
