# blender-jobs test fixture: deliberately leaves state behind for the next job on the
# same worker. Run probe_state.py afterwards on the same worker: it should see none of it.
#
# Leaves:  object "Leftover", text block "LeftoverText", scene frame_end = 1234,
#          global LEFTOVER_GLOBAL = 1, "/leftover/path" in sys.path,
#          os.environ["BLENDER_JOBS_LEFTOVER"] = "1"
# Reads:   nothing
# Returns: python_data = {"left": [what it left behind]}
import os
import sys

import bpy

scene = bpy.context.scene
leftover = bpy.data.objects.new("Leftover", None)
scene.collection.objects.link(leftover)
text = bpy.data.texts.new("LeftoverText")
text.write("left behind by leave_state.py\n")
scene.frame_end = 1234

LEFTOVER_GLOBAL = 1
sys.path.append("/leftover/path")
os.environ["BLENDER_JOBS_LEFTOVER"] = "1"

python_data = {"left": ["object Leftover", "text LeftoverText", "frame_end 1234",
                        "global LEFTOVER_GLOBAL", "sys.path /leftover/path",
                        "env BLENDER_JOBS_LEFTOVER"]}
