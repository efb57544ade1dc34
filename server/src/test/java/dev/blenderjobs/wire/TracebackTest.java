package dev.blenderjobs.wire;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Reading Python tracebacks as Python 3.9 to 3.12 print them (the runtime's format_exception). */
class TracebackTest {

    @Test
    void framesAndTheExceptionLineOfAPlainTraceback() {
        Traceback t = Traceback.parse("""
                Traceback (most recent call last):
                  File "/p/job.py", line 8, in <module>
                    check(42)
                  File "/p/job.py", line 5, in check
                    raise ValueError("value %r is not allowed" % value)
                ValueError: value 42 is not allowed
                """);
        assertEquals(List.of(new Traceback.Frame("/p/job.py", 8, "<module>", "check(42)"),
                new Traceback.Frame("/p/job.py", 5, "check", "raise ValueError(\"value %r is not allowed\" % value)")),
                t.frames());
        assertEquals("ValueError: value 42 is not allowed", t.exception());
    }

    @Test
    void aChainKeepsTheLastTracebackAndSkipsPython311Markers() {
        Traceback t = Traceback.parse("""
                Traceback (most recent call last):
                  File "/p/job.py", line 5, in <module>
                    json.loads("{")
                  File "/usr/lib/python3.11/json/__init__.py", line 346, in loads
                    return _default_decoder.decode(s)
                           ^^^^^^^^^^^^^^^^^^^^^^^^^^
                json.decoder.JSONDecodeError: Expecting property name: line 1 column 2 (char 1)

                During handling of the above exception, another exception occurred:

                Traceback (most recent call last):
                  File "/p/job.py", line 7, in <module>
                    check(42)
                    ~~~~~^^^^
                  File "/p/job.py", line 3, in check
                    raise ValueError("value %r is not allowed" % value)
                ValueError: value 42 is not allowed
                """);
        assertEquals(2, t.frames().size(), t.toString());
        assertEquals(new Traceback.Frame("/p/job.py", 7, "<module>", "check(42)"), t.frames().get(0));
        assertEquals("ValueError: value 42 is not allowed", t.exception());

        Traceback cause = Traceback.parse("""
                Traceback (most recent call last):
                  File "/p/a.py", line 1, in <module>
                    x()
                KeyError: 'k'

                The above exception was the direct cause of the following exception:

                Traceback (most recent call last):
                  File "/p/a.py", line 3, in <module>
                    raise RuntimeError("wrapped") from e
                RuntimeError: wrapped
                """);
        assertEquals(List.of(new Traceback.Frame("/p/a.py", 3, "<module>", "raise RuntimeError(\"wrapped\") from e")),
                cause.frames());
        assertEquals("RuntimeError: wrapped", cause.exception());
    }

    @Test
    void aSyntaxErrorHasAFrameWithoutFunctionAndACaret() {
        Traceback t = Traceback.parse("""
                  File "/p/broken job.py", line 3
                    x = (
                        ^
                SyntaxError: '(' was never closed
                """);
        assertEquals(List.of(new Traceback.Frame("/p/broken job.py", 3, null, "x = (")), t.frames());
        assertEquals("SyntaxError: '(' was never closed", t.exception());
    }

    @Test
    void aMultiLineMessageIsKeptWhole() {
        Traceback t = Traceback.parse("Traceback (most recent call last):\n  File \"/p/j.py\", line 2, in <module>\n"
                + "    raise RuntimeError(\"first\\nsecond\")\nRuntimeError: first\nsecond\n\n");
        assertEquals("RuntimeError: first\nsecond", t.exception());
        assertEquals(1, t.frames().size());
    }

    @Test
    void framesWithoutSourceAndPseudoFiles() {
        Traceback t = Traceback.parse("Traceback (most recent call last):\r\n"
                + "  File \"<string>\", line 1, in <module>\r\n"
                + "  File \"<frozen importlib._bootstrap>\", line 1007, in _find_and_load\r\n"
                + "  File \"/p/x.py\", line 12, in f\r\n"
                + "ZeroDivisionError: division by zero\r\n");
        assertEquals(3, t.frames().size());
        assertNull(t.frames().get(0).source());
        assertFalse(t.frames().get(0).inFile());
        assertFalse(t.frames().get(1).inFile());
        assertTrue(t.frames().get(2).inFile());
        assertTrue(new Traceback.Frame("C:\\p\\x.py", 1, null, null).inFile());
        assertEquals("ZeroDivisionError: division by zero", t.exception());
    }

    @Test
    void anExceptionGroupStillYieldsItsFramesAndALine() {
        Traceback t = Traceback.parse("""
                  + Exception Group Traceback (most recent call last):
                  |   File "/p/g.py", line 4, in <module>
                  |     raise ExceptionGroup("many", [ValueError(1)])
                  | ExceptionGroup: many (1 sub-exception)
                  +-+---------------- 1 ----------------
                    | ValueError: 1
                    +------------------------------------
                """);
        assertEquals(List.of(new Traceback.Frame("/p/g.py", 4, "<module>",
                "raise ExceptionGroup(\"many\", [ValueError(1)])")), t.frames());
        assertEquals("ValueError: 1", t.exception());
    }

    @Test
    void garbageIsNoTraceback() {
        for (String text : new String[]{null, "", "no traceback here", "  File \"/p\", line 99999999999999999999, in x\n",
                "  File \"/p\", line 0, in x\n"}) {
            Traceback t = Traceback.parse(text);
            assertTrue(t.frames().isEmpty(), String.valueOf(text));
        }
        assertEquals("no traceback here", Traceback.parse("no traceback here").exception());
    }
}
