# blender-jobs test fixture: about 2 MB of console output.
#
# Reads:   nothing
# Prints:  20,000 lines of 100 characters each ("line 00000: xxx..."), then "last line marker"
# Returns: python_data = {"lines": 20000}
LINES = 20000
WIDTH = 100  # characters per line, not counting the newline

for i in range(LINES):
    prefix = "line %05d: " % i
    print(prefix + "x" * (WIDTH - len(prefix)))
print("last line marker")

python_data = {"lines": LINES}
