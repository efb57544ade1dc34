# blender-jobs test fixture: report the open .blend file, then modify it and save it.
#
# Run it with a blendFile (e.g. test-fixtures/blend/scene.blend). It reports the state
# before changing anything, then adds an object "AddedByJob", sets frame_end = 999 and
# saves the open file with bpy.ops.wm.save_mainfile(). A test can then check that the
# client's original file is unchanged (the job must have run on a private copy).
# Reads:   nothing
# Returns: python_data = {"objects": sorted object names, "scene_frame_end": int,
#                         "filepath": bpy.data.filepath, "texts": sorted text names,
#                         "saved": True if the file was saved (False without a blendFile)}
import bpy

scene = bpy.context.scene
python_data = {
    "objects": sorted(o.name for o in bpy.data.objects),
    "scene_frame_end": scene.frame_end,
    "filepath": bpy.data.filepath,
    "texts": sorted(t.name for t in bpy.data.texts),
}

added = bpy.data.objects.new("AddedByJob", None)
scene.collection.objects.link(added)
scene.frame_end = 999

saved = False
if bpy.data.filepath:
    result = bpy.ops.wm.save_mainfile(filepath=bpy.data.filepath)
    saved = 'FINISHED' in result
python_data["saved"] = saved
