package io.casscdcpg.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class JsonTest {

    @Test
    void parsesAVaultKvAnswer() {
        String answer = "{\"request_id\":\"f6\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,"
                + "\"data\":{\"data\":{\"password\":\"p\\u00e4$s\",\"port\":5432},"
                + "\"metadata\":{\"created_time\":\"2026-12-04T03:11:44Z\",\"custom_metadata\":null,"
                + "\"deletion_time\":\"\",\"destroyed\":false,\"version\":1}},"
                + "\"wrap_info\":null,\"warnings\":null,\"auth\":null}";
        Object doc = Json.parse(answer);
        assertEquals("pä$s", Json.at(doc, "data", "data", "password"));
        assertEquals(new Json.Num("5432"), Json.at(doc, "data", "data", "port"));
        assertEquals(0L, ((Json.Num) Json.at(doc, "lease_duration")).longValue());
        assertSame(Json.NULL, Json.at(doc, "auth"));
        assertEquals(Boolean.FALSE, Json.at(doc, "renewable"));
        assertEquals(1L, ((Json.Num) Json.at(doc, "data", "metadata", "version")).longValue());
        assertNull(Json.at(doc, "data", "nope"));
        assertNull(Json.at(doc, "lease_id", "deeper"), "a string has no children");
    }

    @Test
    void unescapesEverySimpleEscape() {
        assertEquals("\" \\ / \b \f \n \r \t", Json.parse("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\""));
    }

    @Test
    void unescapesUnicodeEscapesIncludingSurrogatePairs() {
        assertEquals("é", Json.parse("\"\\u00e9\""));
        assertEquals("é", Json.parse("\"\\u00E9\""));
        assertEquals("\uD83D\uDE00", Json.parse("\"\\ud83d\\ude00\""));
        assertEquals("😀", Json.parse("\"\\uD83D\\uDE00\""));
        assertEquals("𝄞x", Json.parse("\"\\ud834\\udd1ex\""));
        assertEquals("<a&b>\u2028", Json.parse("\"\\u003ca\\u0026b\\u003e\\u2028\""), "Go's HTML-safe escapes");
        assertEquals("\u0000", Json.parse("\"\\u0000\""));
    }

    @Test
    void keepsRawNonAsciiAsItIs() {
        assertEquals("pä$s 😀 中文 ﻿", Json.parse("\"pä$s 😀 中文 ﻿\""));
    }

    @Test
    void theBriefsValueRoundTrips() {
        String tricky = "pä$s\\u00e9:=\n\"x";
        String quoted = Json.quote(tricky);
        assertEquals("\"pä$s\\\\u00e9:=\\n\\\"x\"", quoted);
        assertEquals(tricky, Json.parse(quoted));
    }

    @ParameterizedTest
    @ValueSource(strings = {"", " ", "\\", "\\\\", "\"", "a=b", "k:v", "\n\r\t\b\f", "\u0001\u001f\u007f",
            "😀", "\uD83D", "tab\tand \\u0041", "${vault:secret/x:y}", "end\\"})
    void quoteThenParseIsTheIdentity(String s) {
        assertEquals(s, Json.parse(Json.quote(s)));
    }

    @Test
    void parsesNumbersAsTheirLiteralText() {
        for (String n : List.of("0", "-0", "7", "-12", "3.25", "1e5", "1E+5", "2.5e-3", "12345678901234567890")) {
            assertEquals(new Json.Num(n), Json.parse(n), n);
            assertEquals(n, Json.text(Json.parse(n)));
        }
        assertEquals(2764800L, new Json.Num("2764800").longValue());
        assertThrows(ArithmeticException.class, () -> new Json.Num("1.5").longValue());
    }

    @Test
    void rendersValuesAsCompactJsonText() {
        Object doc = Json.parse(" { \"a\" : [ 1 , \"x\\ny\" , false , null , { } , [ ] ] , \"b\" : true } ");
        assertEquals("{\"a\":[1,\"x\\ny\",false,null,{},[]],\"b\":true}", Json.text(doc));
        assertEquals("\"\\u0001\"", Json.quote("\u0001"));
    }

    @Test
    void objectsKeepKeyOrderAndTheLastOfARepeatedKey() {
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) Json.parse("{\"z\":1,\"a\":2,\"z\":3}");
        assertEquals(List.of("z", "a"), List.copyOf(m.keySet()));
        assertEquals(new Json.Num("3"), m.get("z"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "   ", "{", "}", "[1,]", "{\"a\":1,}", "{a:1}", "{'a':1}", "[1 2]",
            "{\"a\" 1}", "\"unterminated", "\"bad \\x escape\"", "\"\\u12\"", "\"\\u12g4\"", "01", "-",
            "1.", ".5", "1e", "+1", "NaN", "Infinity", "tru", "nul", "[] []", "{\"a\":1} x",
            "\"raw\nnewline\"", "\"raw\ttab\"", "\"trailing backslash\\", "[\"a\"", "{\"a\":"})
    void rejectsMalformedDocuments(String bad) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Json.parse(bad));
        assertTrue(e.getMessage().startsWith("malformed JSON"), e.getMessage());
    }

    @Test
    void errorMessagesNeverQuoteTheDocument() {
        String doc = "{\"data\":{\"data\":{\"password\":\"hunter2-secret\" \"oops\"}}}";
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Json.parse(doc));
        assertFalse(e.getMessage().contains("hunter2"), e.getMessage());
        assertTrue(e.getMessage().contains("offset"), e.getMessage());
    }

    @Test
    void deepNestingIsRejectedNotAStackOverflow() {
        String deep = "[".repeat(100_000) + "]".repeat(100_000);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Json.parse(deep));
        assertTrue(e.getMessage().contains("nested"), e.getMessage());
        String ok = "[".repeat(200) + "]".repeat(200);
        assertEquals(ok, Json.text(Json.parse(ok)));
    }

    @Test
    void nullDocumentIsRejected() {
        assertThrows(IllegalArgumentException.class, () -> Json.parse(null));
    }
}
