# blender-jobs test fixture: copy the first passed mesh object and add one quad with bmesh.
#
# Reads:   passed_data_blocks (its first mesh object; without one, a new 2 m cube named "Cube",
#          like the Cube of library.blend, so the script also runs on its own)
# Reports: update_job_progress exactly 100 times (0.01, 0.02, ..., 1.0)
# Returns: python_data = {"faces_before": <faces of the original mesh>, "faces_after": <faces of the copy>}
#          data_blocks = [<new object "<orig>_quad">]
import bmesh
import bpy

source = None
for block in passed_data_blocks:
    if isinstance(block, bpy.types.Object) and block.type == 'MESH':
        source = block
        break
if source is None:
    cube = bpy.data.meshes.new("Cube")
    bm = bmesh.new()
    try:
        bmesh.ops.create_cube(bm, size=2.0)
        bm.to_mesh(cube)
    finally:
        bm.free()
    source = bpy.data.objects.new("Cube", cube)

faces_before = len(source.data.polygons)
mesh = source.data.copy()
mesh.name = source.name + "_quad"

bm = bmesh.new()
try:
    bm.from_mesh(mesh)
    corners = [(-1.0, -1.0, 2.0), (1.0, -1.0, 2.0), (1.0, 1.0, 2.0), (-1.0, 1.0, 2.0)]
    verts = [bm.verts.new(co) for co in corners]
    bm.faces.new(verts)
    bm.to_mesh(mesh)
finally:
    bm.free()
mesh.update()

new_obj = bpy.data.objects.new(source.name + "_quad", mesh)
new_obj.matrix_world = source.matrix_world.copy()
bpy.context.scene.collection.objects.link(new_obj)

for i in range(1, 101):
    update_job_progress(i / 100.0)

python_data = {"faces_before": faces_before, "faces_after": len(mesh.polygons)}
data_blocks = [new_obj]
