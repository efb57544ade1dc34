package dev.blenderjobs.wire;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A Python traceback, as the worker runtime reports it, read back into its frames and the
 * exception's text. It reads what {@code traceback.format_exception} and
 * {@code format_exception_only} print, Python 3.9 to 3.12:
 * <pre>
 * Traceback (most recent call last):
 *   File "/path/job.py", line 8, in &lt;module&gt;
 *     check(42)
 *   File "/path/job.py", line 5, in check
 *     raise ValueError("value %r is not allowed" % value)
 * ValueError: value 42 is not allowed
 * </pre>
 * and a SyntaxError's (a frame without "in", a caret line). Of a chain ("During handling of the
 * above exception...", "The above exception was the direct cause..."), the last traceback is the
 * one that ended the script. The text comes from an untrusted worker, so nothing is assumed:
 * lines that fit no pattern are skipped, and an empty result is fine.
 *
 * @param frames    outermost first, as printed
 * @param exception the exception's lines ("ValueError: value 42 is not allowed"), or "" when none was found
 */
record Traceback(List<Frame> frames, String exception) {

    /**
     * One frame.
     *
     * @param file     as printed: a path, or a pseudo-name such as {@code <string>}
     * @param line     1-based line number
     * @param function the function's name ({@code <module>} at top level), or null (a SyntaxError's location)
     * @param source   the line's source text as printed (stripped), or null
     */
    record Frame(String file, int line, String function, String source) {
        /** Whether {@code file} names a file on disk (an absolute path), not {@code <string>} and the like. */
        boolean inFile() {
            return file.startsWith("/") || file.matches("[A-Za-z]:[\\\\/].*");
        }
    }

    private static final Pattern FRAME = Pattern.compile("^[ \\t|]*File \"(.*)\", line (\\d+)(?:, in (.*?))?\\s*$");
    private static final String HEADER = "Traceback (most recent call last):";
    private static final List<String> CHAIN = List.of(
            "During handling of the above exception, another exception occurred:",
            "The above exception was the direct cause of the following exception:");
    /** Longest traceback read (the runtime caps tracebacks at 1 Mi characters). */
    private static final int MAX_FRAMES = 10_000;

    static Traceback parse(String text) {
        if (text == null || text.isEmpty()) return new Traceback(List.of(), "");
        String[] lines = text.split("\r?\n", -1);
        int start = 0;
        for (int i = 0; i < lines.length; i++) {
            if (CHAIN.contains(lines[i].strip())) start = i + 1;
        }
        List<Frame> frames = new ArrayList<>();
        int exceptionStart = -1;
        for (int i = start; i < lines.length && exceptionStart < 0; i++) {
            String line = lines[i];
            Matcher m = FRAME.matcher(line);
            if (m.matches()) {
                String source = null;
                if (i + 1 < lines.length && isIndented(lines[i + 1]) && !FRAME.matcher(lines[i + 1]).matches()
                        && !isMarker(lines[i + 1])) {
                    source = lines[i + 1].replaceFirst("^[ \\t|]*", "").strip();
                    i++;
                }
                int number;
                try {
                    number = Integer.parseInt(m.group(2));
                } catch (NumberFormatException tooLong) {
                    continue;
                }
                if (number >= 1 && frames.size() < MAX_FRAMES) frames.add(new Frame(m.group(1), number, m.group(3), source));
            } else if (!line.isBlank() && !isIndented(line) && !line.strip().equals(HEADER)) {
                exceptionStart = i;
            }
        }
        String exception = "";
        if (exceptionStart >= 0) {
            int end = lines.length;
            while (end > exceptionStart && lines[end - 1].isBlank()) end--;
            exception = String.join("\n", java.util.Arrays.asList(lines).subList(exceptionStart, end));
        } else {
            // No line at the margin (an exception group prints every line behind "| "): the last
            // line that is not a frame, a marker or a separator.
            for (int i = lines.length - 1; i >= start; i--) {
                String stripped = lines[i].replaceFirst("^[ \\t|+\\-]*", "").strip();
                if (!stripped.isEmpty() && !FRAME.matcher(lines[i]).matches() && !isMarker(lines[i])
                        && !stripped.equals(HEADER) && !stripped.matches("-+( \\d+ -+)?")) {
                    exception = stripped;
                    break;
                }
            }
        }
        return new Traceback(List.copyOf(frames), exception);
    }

    private static boolean isIndented(String line) {
        return !line.isEmpty() && (line.charAt(0) == ' ' || line.charAt(0) == '\t');
    }

    /** A line of carets or tildes under a source line (SyntaxError, Python 3.11's positions). */
    private static boolean isMarker(String line) {
        String s = line.strip();
        return !s.isEmpty() && s.chars().allMatch(c -> c == '^' || c == '~' || c == ' ');
    }
}
