# blender-jobs test fixture: fails with a ValueError raised two calls deep.
#
# Reads:   nothing
# Returns: nothing; raises ValueError("fixture failure: expected") so the traceback
#          shows both outer() and inner().


def inner():
    raise ValueError("fixture failure: expected")


def outer():
    inner()


outer()
python_data = {"unreachable": True}
