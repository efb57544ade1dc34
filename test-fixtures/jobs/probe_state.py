# blender-jobs test fixture: reports the state leave_state.py leaves behind.
# On a clean worker (no blendFile) the expected result is
#   {"objects": [], "texts": [], "frame_end": 250, "has_leftover_global": false,
#    "leftover_in_path": false, "env": null}
#
# Reads:   nothing
# Returns: python_data = {"objects": sorted object names, "texts": sorted text names,
#                         "frame_end": scene frame_end, "has_leftover_global": bool,
#                         "leftover_in_path": bool, "env": $BLENDER_JOBS_LEFTOVER or None}
import os
import sys

import bpy

python_data = {
    "objects": sorted(o.name for o in bpy.data.objects),
    "texts": sorted(t.name for t in bpy.data.texts),
    "frame_end": bpy.context.scene.frame_end,
    "has_leftover_global": "LEFTOVER_GLOBAL" in globals(),
    "leftover_in_path": "/leftover/path" in sys.path,
    "env": os.environ.get("BLENDER_JOBS_LEFTOVER"),
}
