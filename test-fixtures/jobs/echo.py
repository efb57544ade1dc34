# blender-jobs test fixture: echo the passed values back.
#
# Reads:   passed_data (and the globals made from its keys)
# Returns: python_data = {"passed": passed_data,
#                         "globals_seen": sorted keys of passed_data that are also globals}
python_data = {
    "passed": passed_data,
    "globals_seen": sorted(k for k in passed_data if k in globals()),
}
