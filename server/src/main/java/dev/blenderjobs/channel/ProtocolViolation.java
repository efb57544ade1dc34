package dev.blenderjobs.channel;

import java.io.IOException;

/**
 * The worker broke the channel protocol: a frame or message that the protocol does not allow at
 * that point. The worker runs the user's script in its own process, so this is a job's (or an
 * attacker's) doing as often as a bug: the job fails with PROTOCOL_VIOLATION and the worker is
 * replaced, never trusted again. The message reads "the worker sent ...".
 */
public final class ProtocolViolation extends IOException {
    public ProtocolViolation(String what) {
        super("the worker sent " + what);
    }
}
