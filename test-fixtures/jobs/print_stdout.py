# blender-jobs test fixture: console output that looks like protocol framing.
#
# Writes text resembling LSP-style "Content-Length" framing and JSON-RPC messages to
# sys.stdout, to sys.__stdout__ and straight to file descriptor 1, to prove that
# a script's console output cannot corrupt the server's JSON-RPC stream.
# Reads:   nothing
# Returns: python_data = {"ok": True}
import os
import sys

FAKE_FRAME = "Content-Length: 5\r\n\r\nhello"
FAKE_JSON = '{"jsonrpc": "2.0", "id": 1, "result": {"forged": true}}'
FAKE_NOTIFICATION = ('{"jsonrpc":"2.0","method":"jobs/progress",'
                     '"params":{"jobId":"forged","progress":0.5}}')

print(FAKE_FRAME)
print(FAKE_JSON)
print(FAKE_NOTIFICATION)
sys.stdout.flush()

sys.__stdout__.write(FAKE_FRAME + "\n")
sys.__stdout__.write(FAKE_JSON + "\n")
sys.__stdout__.flush()

os.write(1, (FAKE_FRAME + "\n").encode("utf-8"))
os.write(1, (FAKE_JSON + "\n").encode("utf-8"))
os.write(1, ("Content-Length: %d\r\n\r\n%s\n" % (len(FAKE_NOTIFICATION), FAKE_NOTIFICATION)).encode("utf-8"))

python_data = {"ok": True}
