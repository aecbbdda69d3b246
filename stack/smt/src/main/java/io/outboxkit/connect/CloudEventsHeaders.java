package io.outboxkit.connect;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.Values;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.header.ConnectHeaders;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.transforms.Transformation;


/**
 * Rebuilds a record's headers into outboxkit's envelope, after Debezium's Outbox Event Router.
 *
 * <p>The router can only place fixed columns into headers, in its own order, always adds an {@code id}
 * header, and keeps a header whose column is NULL. The polling relay (outbox.envelope.to_kafka) sends
 * the envelope headers in a fixed order, omits a missing {@code traceparent}, and follows them with
 * the user headers of the jsonb {@code headers} column, sorted by name. This transform produces
 * exactly that: the headers listed in {@code headers} in that order ({@code name} copies the incoming
 * header of that name and is omitted when it is absent or null; {@code name=text} is a literal), then
 * the string members of the JSON object in header {@code json.header}, sorted by Unicode code point as
 * Python's {@code sorted()} does. Every other header is dropped. Values are emitted as UTF-8 bytes with
 * a BYTES schema, so with {@code header.converter=ByteArrayConverter} the bytes on Kafka are exactly
 * the polling relay's. Tombstones (null value) are treated the same. Stateless and thread-safe once
 * configured.
 */
public class CloudEventsHeaders<R extends ConnectRecord<R>> implements Transformation<R> {

    public static final String HEADERS = "headers";
    public static final String JSON_HEADER = "json.header";

    private static final ConfigDef CONFIG_DEF = new ConfigDef()
        .define(HEADERS, ConfigDef.Type.LIST, ConfigDef.NO_DEFAULT_VALUE, ConfigDef.Importance.HIGH,
            "Output headers in order: `name` copies the incoming header (omitted when absent or null), "
            + "`name=text` is a literal.")
        .define(JSON_HEADER, ConfigDef.Type.STRING, "", ConfigDef.Importance.MEDIUM,
            "Incoming header holding a JSON object of strings; its members follow, sorted by name.");

    private record Slot(String name, byte[] literal) { }

    private List<Slot> slots = List.of();
    private String jsonHeader = "";

    @Override
    public void configure(Map<String, ?> props) {
        AbstractConfig config = new AbstractConfig(CONFIG_DEF, props);
        List<Slot> parsed = new ArrayList<>();
        for (String entry : config.getList(HEADERS)) {
            int eq = entry.indexOf('=');
            parsed.add(eq < 0
                ? new Slot(entry, null)
                : new Slot(entry.substring(0, eq), entry.substring(eq + 1).getBytes(StandardCharsets.UTF_8)));
        }
        slots = List.copyOf(parsed);
        jsonHeader = config.getString(JSON_HEADER);
    }

    @Override
    public R apply(R record) {
        // A tombstone (the router's record for a NULL payload, outbox.TOMBSTONE) is an event too: it
        // gets the same headers, so it is byte-identical to the polling relay's null-value record.
        ConnectHeaders out = new ConnectHeaders();
        for (Slot slot : slots) {
            byte[] bytes = slot.literal() != null ? slot.literal() : bytesOf(record.headers().lastWithName(slot.name()));
            if (bytes != null) {
                out.add(slot.name(), bytes, Schema.BYTES_SCHEMA);
            }
        }
        if (!jsonHeader.isEmpty()) {
            byte[] json = bytesOf(record.headers().lastWithName(jsonHeader));
            if (json != null) {
                for (Map.Entry<String, String> member : parseStringObject(new String(json, StandardCharsets.UTF_8)).entrySet()) {
                    out.add(member.getKey(), member.getValue().getBytes(StandardCharsets.UTF_8), Schema.BYTES_SCHEMA);
                }
            }
        }
        return record.newRecord(record.topic(), record.kafkaPartition(), record.keySchema(), record.key(),
            record.valueSchema(), record.value(), record.timestamp(), out);
    }

    private static byte[] bytesOf(Header header) {
        if (header == null || header.value() == null) {
            return null;
        }
        Object value = header.value();
        if (value instanceof String text) {
            return text.getBytes(StandardCharsets.UTF_8);
        }
        if (value instanceof byte[] raw) {
            return raw;
        }
        if (value instanceof ByteBuffer buffer) {
            byte[] raw = new byte[buffer.remaining()];
            buffer.duplicate().get(raw);
            return raw;
        }
        return Values.convertToString(header.schema(), value).getBytes(StandardCharsets.UTF_8);
    }

    /** Python's sorted() on str: by code point (String.compareTo would compare UTF-16 units). */
    static int byCodePoint(String a, String b) {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int ca = a.codePointAt(i);
            int cb = b.codePointAt(j);
            if (ca != cb) {
                return Integer.compare(ca, cb);
            }
            i += Character.charCount(ca);
            j += Character.charCount(cb);
        }
        return Boolean.compare(i < a.length(), j < b.length());
    }

    /** A JSON object whose members are all strings (what PostgreSQL renders for the jsonb column). */
    static TreeMap<String, String> parseStringObject(String json) {
        Parser p = new Parser(json);
        TreeMap<String, String> members = new TreeMap<>(CloudEventsHeaders::byCodePoint);
        p.expect('{');
        if (!p.consume('}')) {
            do {
                String name = p.string();
                p.expect(':');
                members.put(name, p.string());
            } while (p.consume(','));
            p.expect('}');
        }
        p.end();
        return members;
    }

    private static final class Parser {
        private final String s;
        private int at;

        Parser(String s) {
            this.s = s;
        }

        private void skipSpace() {
            while (at < s.length() && " \t\r\n".indexOf(s.charAt(at)) >= 0) {
                at++;
            }
        }

        boolean consume(char c) {
            skipSpace();
            if (at < s.length() && s.charAt(at) == c) {
                at++;
                return true;
            }
            return false;
        }

        void expect(char c) {
            if (!consume(c)) {
                throw fail("'" + c + "' expected");
            }
        }

        void end() {
            skipSpace();
            if (at != s.length()) {
                throw fail("trailing text");
            }
        }

        String string() {
            expect('"');
            StringBuilder out = new StringBuilder();
            while (at < s.length()) {
                char c = s.charAt(at++);
                if (c == '"') {
                    return out.toString();
                }
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                if (at >= s.length()) {
                    break;
                }
                char e = s.charAt(at++);
                switch (e) {
                    case '"', '\\', '/' -> out.append(e);
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'u' -> {
                        int code = 0;
                        for (int end = at + 4; at < end; at++) {
                            int digit = at < s.length() && s.charAt(at) < 128 ? Character.digit(s.charAt(at), 16) : -1;
                            if (digit < 0) {
                                throw fail("\\u needs four hex digits");
                            }
                            code = code * 16 + digit;
                        }
                        out.append((char) code);
                    }
                    default -> throw fail("bad escape \\" + e);
                }
            }
            throw fail("a string (user header names and values must be strings)");
        }

        private DataException fail(String what) {
            return new DataException("outboxkit CloudEventsHeaders: user headers are not a JSON object of strings ("
                + what + " at offset " + at + ")");
        }
    }

    @Override
    public ConfigDef config() {
        return CONFIG_DEF;
    }

    @Override
    public void close() {
    }
}
