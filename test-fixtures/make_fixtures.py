# Regenerates the .blend fixtures used by the blender-jobs tests:
#
#   blender -b --factory-startup --python test-fixtures/make_fixtures.py
#
# blend/library.blend  a library (bpy.data.libraries.write) with the mesh objects
#                      "Cube" (8 verts), "Plane" (4 verts) and "Tetra" (4 verts)
# blend/scene.blend    a full saved file with objects "Cube" and "Camera",
#                      scene frame_end = 77 and a text block "Notes"
#
# Both are built from empty data, so the output does not depend on the startup file.
# Compatible with Blender 2.93 through 4.x.
import os
import sys

import bpy

HERE = os.path.dirname(os.path.abspath(__file__))
BLEND_DIR = os.path.join(HERE, "blend")
LIBRARY_PATH = os.path.join(BLEND_DIR, "library.blend")
SCENE_PATH = os.path.join(BLEND_DIR, "scene.blend")

CUBE_VERTS = [(-1, -1, -1), (1, -1, -1), (1, 1, -1), (-1, 1, -1),
              (-1, -1, 1), (1, -1, 1), (1, 1, 1), (-1, 1, 1)]
CUBE_FACES = [(0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4),
              (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)]
PLANE_VERTS = [(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)]
PLANE_FACES = [(0, 1, 2, 3)]
TETRA_VERTS = [(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)]
TETRA_FACES = [(0, 1, 2), (0, 3, 1), (0, 2, 3), (1, 3, 2)]


def mesh_object(name, verts, faces, location=(0.0, 0.0, 0.0)):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([tuple(float(c) for c in v) for v in verts], [], faces)
    mesh.update()
    if mesh.validate():
        raise RuntimeError("mesh %s was invalid" % name)
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    bpy.context.scene.collection.objects.link(obj)
    return obj


def make_library():
    bpy.ops.wm.read_homefile(use_empty=True)
    objects = [
        mesh_object("Cube", CUBE_VERTS, CUBE_FACES),
        mesh_object("Plane", PLANE_VERTS, PLANE_FACES, location=(3.0, 0.0, 0.0)),
        mesh_object("Tetra", TETRA_VERTS, TETRA_FACES, location=(-3.0, 0.0, 0.0)),
    ]
    remove_old(LIBRARY_PATH)
    bpy.data.libraries.write(LIBRARY_PATH, set(objects), fake_user=True)


def drop_extra_workspaces():
    """Keep only the active workspace (and its screen): halves the saved file's size."""
    keep = bpy.context.workspace
    extra = [ws for ws in bpy.data.workspaces if ws != keep]
    if keep is not None and extra and hasattr(bpy.data, "batch_remove"):
        bpy.data.batch_remove(extra)


def remove_old(path):
    # Removing the old file first also keeps Blender from leaving a "<name>.blend1" backup.
    for old in (path, path + "1"):
        if os.path.exists(old):
            os.remove(old)


def make_scene():
    bpy.ops.wm.read_homefile(use_empty=True)
    drop_extra_workspaces()
    scene = bpy.context.scene
    mesh_object("Cube", CUBE_VERTS, CUBE_FACES)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.location = (7.0, -7.0, 5.0)
    camera.rotation_euler = (1.1, 0.0, 0.785)
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.frame_end = 77
    notes = bpy.data.texts.new("Notes")
    notes.write("blender-jobs fixture scene: Cube, Camera, frame_end = 77.\n")
    remove_old(SCENE_PATH)
    bpy.ops.wm.save_as_mainfile(filepath=SCENE_PATH, compress=False)


def main():
    os.makedirs(BLEND_DIR, exist_ok=True)
    make_library()
    make_scene()
    for path in (LIBRARY_PATH, SCENE_PATH):
        print("wrote %s (%d bytes)" % (path, os.path.getsize(path)))


try:
    main()
except Exception:
    import traceback
    traceback.print_exc()
    sys.exit(1)
