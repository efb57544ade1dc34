package dev.blenderjobs;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;

/**
 * stdout is the protocol: this takes the real stdout for JSON-RPC alone and points
 * {@code System.out} at stderr, so that no stray print (ours or a library's) corrupts the stream.
 */
final class StdioGuard {
    private static OutputStream protocolOut;

    private StdioGuard() {
    }

    static synchronized void claimStdout() {
        if (protocolOut != null) return;
        protocolOut = new FileOutputStream(FileDescriptor.out);
        System.setOut(new PrintStream(new FileOutputStream(FileDescriptor.err), true));
    }

    static synchronized OutputStream protocolOut() {
        claimStdout();
        return protocolOut;
    }

    static InputStream protocolIn() {
        return new FileInputStream(FileDescriptor.in);
    }
}
