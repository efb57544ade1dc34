package dev.blenderjobs.model;

/**
 * Proper Unicode in request strings. JSON's backslash-u escapes can spell half of a UTF-16
 * surrogate pair on its own; such a string has no UTF-8 form, so no file (script, passedData)
 * and no Python str made from UTF-8 can hold it. It is refused where it arrives, naming the field.
 */
public final class Unicode {
    /** What to do about a lone surrogate, for the end of an error's reason. */
    public static final String ADVICE = "JSON text must be proper Unicode: a \\uD800-\\uDFFF escape is only valid as "
            + "half of a surrogate pair (e.g. \\ud83d\\ude00). Send the text as UTF-8, or encode binary data (base64)";

    private Unicode() {
    }

    /** Index of the first lone surrogate, or -1 when the string is proper Unicode. */
    public static int loneSurrogateAt(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (!Character.isSurrogate(c)) continue;
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
                continue;
            }
            return i;
        }
        return -1;
    }

    /** e.g. "\\ud800 at character 3": the escape and its place, never the character itself (it has no UTF-8 form). */
    public static String describeAt(String s, int index) {
        return String.format("\\u%04x at character %d", (int) s.charAt(index), index);
    }
}
