package dev.blenderjobs;

import java.io.IOException;
import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.nio.file.Path;
import java.time.Instant;
import java.util.logging.StreamHandler;
import java.util.logging.FileHandler;
import java.util.logging.Formatter;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogManager;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/** java.util.logging to stderr (never stdout), optionally also to a file. */
final class Logging {
    private Logging() {
    }

    static void configure(String level, Path file) throws IOException {
        Level parsed;
        try {
            parsed = Level.parse(level.toUpperCase());
        } catch (IllegalArgumentException e) {
            parsed = Level.INFO;
        }
        LogManager.getLogManager().reset();
        Logger root = Logger.getLogger("");
        root.setLevel(Level.WARNING);
        Logger ours = Logger.getLogger("dev.blenderjobs");
        ours.setLevel(parsed);
        Formatter format = new Formatter() {
            @Override
            public String format(LogRecord r) {
                StringBuilder sb = new StringBuilder();
                sb.append(Instant.ofEpochMilli(r.getMillis())).append(' ').append(r.getLevel().getName()).append(' ')
                        .append(shortName(r.getLoggerName())).append(": ").append(formatMessage(r)).append('\n');
                if (r.getThrown() != null) {
                    java.io.StringWriter sw = new java.io.StringWriter();
                    r.getThrown().printStackTrace(new java.io.PrintWriter(sw));
                    sb.append(sw);
                }
                return sb.toString();
            }
        };
        // A StreamHandler on its own stream to fd 2: ConsoleHandler.setOutputStream would close
        // System.err (and with it fd 2, which a later open() could then reuse).
        Handler stderr = new StreamHandler(new FileOutputStream(FileDescriptor.err), format) {
            @Override
            public synchronized void publish(LogRecord record) {
                super.publish(record);
                flush();
            }
        };
        stderr.setLevel(Level.ALL);
        stderr.setFormatter(format);
        root.addHandler(stderr);
        if (file != null) {
            FileHandler fh = new FileHandler(file.toString(), true);
            fh.setLevel(Level.ALL);
            fh.setFormatter(format);
            root.addHandler(fh);
        }
    }

    private static String shortName(String name) {
        if (name == null) return "";
        int dot = name.lastIndexOf('.');
        return dot < 0 ? name : name.substring(dot + 1);
    }
}
