package io.outboxkit.connect;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.header.ConnectHeaders;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.source.SourceRecord;
import org.junit.jupiter.api.Test;

/**
 * The transform alone, on records shaped like the Outbox Event Router's output. The end-to-end check
 * (Debezium's records byte-identical to the polling relay's) is tests/relay/test_conformance.py.
 */
class CloudEventsHeadersTest {

    private static final String USER = "outboxkit.user-headers";

    private static CloudEventsHeaders<SourceRecord> transform(String headers, String jsonHeader) {
        CloudEventsHeaders<SourceRecord> t = new CloudEventsHeaders<>();
        t.configure(Map.of(CloudEventsHeaders.HEADERS, headers, CloudEventsHeaders.JSON_HEADER, jsonHeader));
        return t;
    }

    private static SourceRecord record(ConnectHeaders headers) {
        return new SourceRecord(Map.of(), Map.of(), "orders", 0, Schema.STRING_SCHEMA, "o-1",
            Schema.BYTES_SCHEMA, "{}".getBytes(StandardCharsets.UTF_8), 1L, headers);
    }

    /** (name, UTF-8 text) of each output header, in order; every value must be BYTES. */
    private static List<String> names(SourceRecord out) {
        List<String> names = new ArrayList<>();
        for (Header h : out.headers()) {
            assertEquals(Schema.BYTES_SCHEMA, h.schema(), h.key());
            names.add(h.key() + "=" + new String((byte[]) h.value(), StandardCharsets.UTF_8));
        }
        return names;
    }

    @Test
    void envelopeHeadersComeInTheConfiguredOrderAndTheRestIsDropped() {
        ConnectHeaders in = new ConnectHeaders();
        in.addString("id", "router-id");
        in.addString("ce_type", "order.placed");
        in.addString("ce_id", "0192-id");
        in.add("traceparent", null, Schema.OPTIONAL_STRING_SCHEMA); // NULL column: omitted
        in.addString("unlisted", "dropped");
        SourceRecord out = transform("ce_specversion=1.0,ce_id,ce_type,ce_source,traceparent", "")
            .apply(record(in));
        assertEquals(List.of("ce_specversion=1.0", "ce_id=0192-id", "ce_type=order.placed"), names(out));
        assertEquals("o-1", out.key());
        assertEquals("orders", out.topic());
    }

    @Test
    void userHeadersFollowSortedByCodePointLikePython() {
        ConnectHeaders in = new ConnectHeaders();
        in.addString("ce_id", "x");
        // U+FFFD sorts before U+1F600 by code point, after it by UTF-16 unit (0xD83D): Python's order wins.
        in.addString(USER, "{\"z\": \"\", \"\\uFFFD\": \"r\", \"\uD83D\uDE00\": \"smile\", \"Zeta\": \"Z\", "
            + "\"a.b\": \"say \\\"hi\\\" \\\\ {x: [1]}\", \"t\": \"tab\\there \\u00fc\\n\"}");
        SourceRecord out = transform("ce_id", USER).apply(record(in));
        assertEquals(List.of("ce_id=x", "Zeta=Z", "a.b=say \"hi\" \\ {x: [1]}", "t=tab\there \u00fc\n", "z=",
            "\uFFFD=r", "\uD83D\uDE00=smile"), names(out));
    }

    @Test
    void headerValuesOfEveryShapeBecomeTheSameUtf8Bytes() {
        byte[] utf8 = "kunde-\u00fc-\u6771\u4eac".getBytes(StandardCharsets.UTF_8);
        for (Object value : List.of("kunde-\u00fc-\u6771\u4eac", utf8, ByteBuffer.wrap(utf8))) {
            ConnectHeaders in = new ConnectHeaders();
            in.add("ce_subject", value, value instanceof String ? Schema.STRING_SCHEMA : Schema.BYTES_SCHEMA);
            SourceRecord out = transform("ce_subject", "").apply(record(in));
            assertArrayEquals(utf8, (byte[]) out.headers().lastWithName("ce_subject").value());
        }
    }

    @Test
    void aTombstoneKeepsItsNullValueAndGetsTheEnvelopeHeaders() {
        ConnectHeaders in = new ConnectHeaders();
        in.addString("id", "router-id");
        in.addString("ce_id", "0192-id");
        in.addString(USER, "{}");
        SourceRecord tombstone = new SourceRecord(Map.of(), Map.of(), "orders", 0, Schema.STRING_SCHEMA, "o-1",
            null, null, 1L, in);
        SourceRecord out = transform("ce_specversion=1.0,ce_id", USER).apply(tombstone);
        assertEquals(List.of("ce_specversion=1.0", "ce_id=0192-id"), names(out));
        assertEquals(null, out.value());
        assertEquals("o-1", out.key());
    }

    @Test
    void noUserHeadersIsAnEmptyObjectOrAnAbsentHeader() {
        ConnectHeaders in = new ConnectHeaders();
        in.addString("ce_id", "x");
        assertEquals(List.of("ce_id=x"), names(transform("ce_id", USER).apply(record(in))));
        in.addString(USER, " { } ");
        assertEquals(List.of("ce_id=x"), names(transform("ce_id", USER).apply(record(in))));
    }

    @Test
    void userHeadersThatAreNotAnObjectOfStringsFailWithTheReason() {
        for (String bad : List.of("{\"n\": 1}", "[\"a\"]", "{\"a\": \"b\"", "{\"a\": \"b\"} x", "{\"a\": \"\\q\"}",
                "{\"a\": \"\\u12\"}", "{\"a\": \"\\u\u0661\u0662\u0663\u0664\"}")) {
            ConnectHeaders in = new ConnectHeaders();
            in.addString(USER, bad);
            DataException err = assertThrows(DataException.class,
                () -> transform("ce_id", USER).apply(record(in)), bad);
            assertTrue(err.getMessage().contains("not a JSON object of strings"), err.getMessage());
        }
    }

    @Test
    void theHeaderListIsRequired() {
        CloudEventsHeaders<SourceRecord> t = new CloudEventsHeaders<>();
        assertThrows(ConfigException.class, () -> t.configure(Map.of()));
    }
}
