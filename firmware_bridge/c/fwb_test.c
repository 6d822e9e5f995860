/*
 * Host test program for fwb_packet.c (built by the pytest suite with gcc -std=c99 -Wall -Wextra -Werror -pedantic).
 *
 *   fwb_test selftest          built-in checks; exit status 0 when all pass
 *   fwb_test encode < lines    each line "stream seq ts format n channels v..." -> packet as lowercase hex
 *                              (int formats: decimal values; float32: 8-hex-digit IEEE-754 bit patterns)
 *   fwb_test decode < lines    each line a packet in hex -> "ok stream seq ts format n channels v..." or
 *                              "error NAME" (NAME as fwb_status_name spells it)
 *   fwb_test describe < lines  each line "firmware count" then per stream "id format channels rate scale offset
 *                              modality units" (doubles as 16-hex-digit IEEE-754 bit patterns, units "-" for
 *                              empty) -> the description value in hex, or "error NAME"
 *   fwb_test control < lines   each line a control write in hex -> "ok op stream rate_bits spp" or
 *                              "error 0xNN" (the ATT error code)
 *   fwb_test timestamp < lines each line "sample_index rate_millihz" -> fwb_sample_timestamp_us
 *   fwb_test access < lines    each line "required encrypted bonded secure_connections" -> "0xNN" (fwb_check_access)
 *   fwb_test pairing < lines   each line "required auth_req" (decimal) -> "0xNN" (fwb_check_pairing)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fwb_packet.h"

#define MAX_PACKET (FWB_OVERHEAD + 255u * 255u * 4u)
#define MAX_LINE (2u * MAX_PACKET + 64u)

static char line[MAX_LINE];
static uint8_t packet_bytes[MAX_PACKET];
static int32_t int_values[255u * 255u];
static float float_values[255u * 255u];

static int failures = 0;
static int checks = 0;

static void check(int condition, const char *what)
{
    ++checks;
    if (!condition) {
        ++failures;
        fprintf(stderr, "FAILED: %s\n", what);
    }
}

static int selftest(void)
{
    static const uint8_t digits[9] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
    /* Hand-computed: stream 2, seq 0xFFFF, ts 5, int24, 2 samples x 2 channels: 1, -2, -8388608, 8388607. */
    static const uint8_t expected_int24[] = {0x01, 0x02, 0xFF, 0xFF, 0x05, 0x00, 0x00, 0x00, 0x02, 0x02, 0x02,
                                             0x01, 0x00, 0x00, 0xFE, 0xFF, 0xFF, 0x00, 0x00, 0x80, 0xFF, 0xFF, 0x7F};
    const int32_t values[4] = {1, -2, -8388608L, 8388607L};
    const float floats[2] = {1.5f, -0.25f};
    uint8_t out[64];
    fwb_packet_t p;
    int32_t n;

    check(fwb_crc16(digits, 9) == 0x29B1u, "CRC-16/CCITT-FALSE check value 0x29B1");
    check(fwb_crc16_update(fwb_crc16(digits, 4), digits + 4, 5) == 0x29B1u, "CRC in two parts");

    n = fwb_encode_int(out, sizeof out, 2, 0xFFFFu, 5u, FWB_FORMAT_INT24, values, 2, 2);
    check(n == (int32_t)sizeof expected_int24 + 2, "int24 packet size");
    check(memcmp(out, expected_int24, sizeof expected_int24) == 0, "int24 header and payload bytes");
    check(fwb_decode(out, (size_t)n, &p) == FWB_OK, "int24 decodes");
    check(p.sequence == 0xFFFFu && p.timestamp_us == 5u && p.channel_count == 2u, "int24 header fields");
    check(fwb_get_int(&p, 0, 1) == -2 && fwb_get_int(&p, 1, 0) == -8388608L && fwb_get_int(&p, 1, 1) == 8388607L,
          "int24 sign extension");

    n = fwb_encode_float32(out, sizeof out, 9, 1, 0xFFFFFFFFuL, floats, 2, 1);
    check(n == 13 + 8, "float32 packet size");
    check(out[11] == 0x00 && out[12] == 0x00 && out[13] == 0xC0 && out[14] == 0x3F, "1.5f little-endian");
    check(fwb_decode(out, (size_t)n, &p) == FWB_OK && fwb_get_float32(&p, 1, 0) == -0.25f, "float32 decodes");

    check(fwb_decode(out, (size_t)n - 1, &p) == FWB_ERR_TRUNCATED, "truncated");
    check(fwb_decode(out, 12, &p) == FWB_ERR_TRUNCATED, "shorter than header");
    out[n - 1] ^= 0x01u;
    check(fwb_decode(out, (size_t)n, &p) == FWB_ERR_CRC, "crc");
    out[0] = 2;
    check(fwb_decode(out, (size_t)n, &p) == FWB_ERR_VERSION, "version");

    check(fwb_encode_int(out, sizeof out, 0, 0, 0, FWB_FORMAT_INT16, values, 2, 2) == FWB_ERR_RANGE, "int16 range");
    check(fwb_encode_int(out, 10, 0, 0, 0, FWB_FORMAT_INT24, values, 1, 1) == FWB_ERR_BUFFER, "buffer too small");
    check(fwb_encode_int(out, sizeof out, 0, 0, 0, FWB_FORMAT_INT24, values, 0, 1) == FWB_ERR_COUNT, "zero samples");
    check(fwb_encode_int(out, sizeof out, 0, 0, 0, 7, values, 1, 1) == FWB_ERR_FORMAT, "unknown format");

    check(fwb_max_samples(23, 1, FWB_FORMAT_INT16) == 3 && fwb_max_samples(23, 1, FWB_FORMAT_INT24) == 2 &&
              fwb_max_samples(23, 1, FWB_FORMAT_FLOAT32) == 1,
          "samples per packet at MTU 23");
    check(fwb_max_samples(247, 1, FWB_FORMAT_INT16) == 115 && fwb_max_samples(517, 1, FWB_FORMAT_INT16) == 250,
          "samples per packet at MTU 247 and 517");
    check(fwb_max_samples(22, 1, FWB_FORMAT_INT16) == 0, "MTU below 23");

    {
        static const uint8_t start_all[2] = {0x01, 0xFF};
        static const uint8_t configure[7] = {0x03, 0x01, 0x00, 0x00, 0x02, 0x43, 0x0A}; /* 130.0f, 10 */
        static const uint8_t bad_length[3] = {0x02, 0x00, 0x00};
        static const uint8_t bad_op[2] = {0x09, 0x00};
        fwb_control_t command;
        check(fwb_decode_control(start_all, 2, &command) == 0 && command.opcode == FWB_OP_START &&
                  command.stream_id == FWB_ALL_STREAMS,
              "START all streams");
        check(fwb_decode_control(configure, 7, &command) == 0 && command.sample_rate_hz == 130.0f &&
                  command.samples_per_packet == 10u,
              "CONFIGURE 130 Hz, 10 samples per packet");
        check(fwb_decode_control(bad_length, 3, &command) == FWB_ATT_ERR_INVALID_LENGTH, "STOP of 3 bytes");
        check(fwb_decode_control(bad_op, 2, &command) == FWB_ATT_ERR_UNKNOWN_OPCODE, "opcode 9");
        check(fwb_sample_timestamp_us(130u, 130000u) == 1000000u, "130 samples at 130 Hz = 1 s");
        check(fwb_sample_timestamp_us(1u, 3000u) == 333333u, "1/3 s rounds to 333333 us");
        check(fwb_sample_timestamp_us(4295u * 1000u, 1000000u) == 32704u, "wraps modulo 2^32");
    }

    {
        static char long_name[301];
        fwb_stream_desc_t stream = {0, FWB_FORMAT_INT16, 1, 10.0, 1.0, 0.0, "ecg", "mV"};
        uint8_t small[40];
        memset(long_name, 'm', 300);
        long_name[300] = '\0';
        check(fwb_encode_description(out, sizeof out, "1", &stream, 1) == 1 + 2 + 1 + 27 + 4 + 3 + 2,
              "description of one stream: 40 bytes");
        check(fwb_encode_description(small, sizeof small - 1, "1", &stream, 1) == FWB_ERR_BUFFER,
              "description: buffer one byte short");
        stream.modality = long_name;
        check(fwb_encode_description(out, sizeof out, "1", &stream, 1) == FWB_ERR_RANGE,
              "description: 300-byte modality refused");
    }

    check(fwb_check_access(FWB_SECURITY_NONE, 0, 0, 0) == 0, "open board: any link");
    check(fwb_check_access(FWB_SECURITY_ENCRYPTED, 0, 0, 0) == FWB_ATT_ERR_INSUFFICIENT_AUTHENTICATION,
          "unpaired link: insufficient authentication");
    check(fwb_check_access(FWB_SECURITY_BONDED, 0, 1, 1) == FWB_ATT_ERR_INSUFFICIENT_ENCRYPTION,
          "bonded peer, link not yet encrypted: insufficient encryption");
    check(fwb_check_access(FWB_SECURITY_BONDED, 1, 1, 0) == FWB_ATT_ERR_INSUFFICIENT_AUTHENTICATION,
          "bonded board, legacy key: refused");
    check(fwb_check_access(FWB_SECURITY_BONDED, 1, 1, 1) == 0, "bonded board, Secure Connections bond");
    check(fwb_check_access(7, 1, 1, 0) == FWB_ATT_ERR_INSUFFICIENT_AUTHENTICATION, "unknown level fails closed");
    check(fwb_check_pairing(FWB_SECURITY_BONDED, 0x09u) == 0, "bonding + SC request");
    check(fwb_check_pairing(FWB_SECURITY_BONDED, 0x01u) == FWB_SMP_ERR_AUTHENTICATION_REQUIREMENTS,
          "bonding without SC refused");
    check(fwb_check_pairing(FWB_SECURITY_BONDED, 0x08u) == FWB_SMP_ERR_AUTHENTICATION_REQUIREMENTS,
          "SC without bonding refused");
    check(fwb_check_pairing(FWB_SECURITY_ENCRYPTED, 0x00u) == 0, "an encrypted board pairs without bonding");

    printf("selftest: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The hex digits at the start of `line` -> packet_bytes; returns the byte count. */
static size_t hex_line_to_bytes(void)
{
    size_t size = 0, i;
    for (i = 0; hex_value(line[i]) >= 0 && hex_value(line[i + 1]) >= 0; i += 2) {
        packet_bytes[size++] = (uint8_t)(hex_value(line[i]) * 16 + hex_value(line[i + 1]));
    }
    return size;
}

/* An encoder's result: packet_bytes[0 .. n) in hex, or "error NAME" for n < 0. */
static void print_result(int32_t n)
{
    int32_t i;
    if (n < 0) {
        printf("error %s\n", fwb_status_name(n));
        return;
    }
    for (i = 0; i < n; ++i) {
        printf("%02x", packet_bytes[i]);
    }
    printf("\n");
}

static int encode_lines(void)
{
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *cursor = line, *end;
        unsigned long header[6];
        size_t i, count;
        int32_t n;
        for (i = 0; i < 6; ++i) {
            header[i] = strtoul(cursor, &end, 0);
            if (end == cursor) {
                fprintf(stderr, "bad header field %u\n", (unsigned)i);
                return 2;
            }
            cursor = end;
        }
        count = header[4] * header[5];
        for (i = 0; i < count; ++i) {
            if (header[3] == FWB_FORMAT_FLOAT32) {
                uint32_t bits = (uint32_t)strtoul(cursor, &end, 16);
                memcpy(&float_values[i], &bits, sizeof bits);
            } else {
                int_values[i] = (int32_t)strtol(cursor, &end, 10);
            }
            if (end == cursor) {
                fprintf(stderr, "missing value %u\n", (unsigned)i);
                return 2;
            }
            cursor = end;
        }
        if (header[3] == FWB_FORMAT_FLOAT32) {
            n = fwb_encode_float32(packet_bytes, sizeof packet_bytes, (uint8_t)header[0], (uint16_t)header[1],
                                   (uint32_t)header[2], float_values, (uint8_t)header[4], (uint8_t)header[5]);
        } else {
            n = fwb_encode_int(packet_bytes, sizeof packet_bytes, (uint8_t)header[0], (uint16_t)header[1],
                               (uint32_t)header[2], (uint8_t)header[3], int_values, (uint8_t)header[4],
                               (uint8_t)header[5]);
        }
        print_result(n);
    }
    return 0;
}

static int decode_lines(void)
{
    while (fgets(line, sizeof line, stdin) != NULL) {
        size_t size = hex_line_to_bytes(), i, j;
        fwb_packet_t p;
        int32_t status;
        status = fwb_decode(packet_bytes, size, &p);
        if (status != FWB_OK) {
            printf("error %s\n", fwb_status_name(status));
            continue;
        }
        printf("ok %u %u %lu %u %u %u", (unsigned)p.stream_id, (unsigned)p.sequence, (unsigned long)p.timestamp_us,
               (unsigned)p.sample_format, (unsigned)p.sample_count, (unsigned)p.channel_count);
        for (i = 0; i < p.sample_count; ++i) {
            for (j = 0; j < p.channel_count; ++j) {
                if (p.sample_format == FWB_FORMAT_FLOAT32) {
                    float value = fwb_get_float32(&p, i, j);
                    uint32_t bits;
                    memcpy(&bits, &value, sizeof bits);
                    printf(" %08lx", (unsigned long)bits);
                } else {
                    printf(" %ld", (long)fwb_get_int(&p, i, j));
                }
            }
        }
        printf("\n");
    }
    return 0;
}

static double double_from_hex(const char *text, char **end)
{
    uint64_t bits = (uint64_t)strtoull(text, end, 16);
    double value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static int describe_lines(void)
{
    static char names[FWB_MAX_STREAMS][2][256];
    static char firmware[256];
    static fwb_stream_desc_t streams[FWB_MAX_STREAMS];
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *cursor = line, *end;
        int consumed = 0;
        unsigned count, i;
        int32_t n;
        if (sscanf(cursor, "%255s %u%n", firmware, &count, &consumed) != 2 || count > FWB_MAX_STREAMS) {
            fprintf(stderr, "bad description line\n");
            return 2;
        }
        cursor += consumed;
        for (i = 0; i < count; ++i) {
            fwb_stream_desc_t *s = &streams[i];
            s->stream_id = (uint8_t)strtoul(cursor, &end, 10);
            s->sample_format = (uint8_t)strtoul(end, &end, 10);
            s->channels = (uint8_t)strtoul(end, &end, 10);
            s->sample_rate_hz = double_from_hex(end, &end);
            s->scale = double_from_hex(end, &end);
            s->offset = double_from_hex(end, &end);
            if (sscanf(end, "%255s %255s%n", names[i][0], names[i][1], &consumed) != 2) {
                fprintf(stderr, "bad stream %u\n", i);
                return 2;
            }
            cursor = end + consumed;
            s->modality = names[i][0];
            s->units = strcmp(names[i][1], "-") == 0 ? "" : names[i][1];
        }
        n = fwb_encode_description(packet_bytes, sizeof packet_bytes, firmware, streams, (uint8_t)count);
        print_result(n);
    }
    return 0;
}

static int control_lines(void)
{
    while (fgets(line, sizeof line, stdin) != NULL) {
        size_t size = hex_line_to_bytes();
        fwb_control_t command;
        int status;
        uint32_t bits;
        status = fwb_decode_control(packet_bytes, size, &command);
        if (status != 0) {
            printf("error 0x%02X\n", (unsigned)status);
            continue;
        }
        memcpy(&bits, &command.sample_rate_hz, sizeof bits);
        printf("ok %u %u %08lx %u\n", (unsigned)command.opcode, (unsigned)command.stream_id, (unsigned long)bits,
               (unsigned)command.samples_per_packet);
    }
    return 0;
}

static int timestamp_lines(void)
{
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *end;
        uint64_t index = (uint64_t)strtoull(line, &end, 10);
        uint32_t rate = (uint32_t)strtoul(end, &end, 10);
        printf("%lu\n", (unsigned long)fwb_sample_timestamp_us(index, rate));
    }
    return 0;
}

static int access_lines(void)
{
    while (fgets(line, sizeof line, stdin) != NULL) {
        unsigned required, encrypted, bonded, sc;
        if (sscanf(line, "%u %u %u %u", &required, &encrypted, &bonded, &sc) != 4) {
            fprintf(stderr, "bad access line\n");
            return 2;
        }
        printf("0x%02X\n", (unsigned)fwb_check_access((uint8_t)required, (int)encrypted, (int)bonded, (int)sc));
    }
    return 0;
}

static int pairing_lines(void)
{
    while (fgets(line, sizeof line, stdin) != NULL) {
        unsigned required, auth_req;
        if (sscanf(line, "%u %u", &required, &auth_req) != 2) {
            fprintf(stderr, "bad pairing line\n");
            return 2;
        }
        printf("0x%02X\n", (unsigned)fwb_check_pairing((uint8_t)required, (uint8_t)auth_req));
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "selftest") == 0) return selftest();
    if (argc == 2 && strcmp(argv[1], "encode") == 0) return encode_lines();
    if (argc == 2 && strcmp(argv[1], "decode") == 0) return decode_lines();
    if (argc == 2 && strcmp(argv[1], "describe") == 0) return describe_lines();
    if (argc == 2 && strcmp(argv[1], "control") == 0) return control_lines();
    if (argc == 2 && strcmp(argv[1], "timestamp") == 0) return timestamp_lines();
    if (argc == 2 && strcmp(argv[1], "access") == 0) return access_lines();
    if (argc == 2 && strcmp(argv[1], "pairing") == 0) return pairing_lines();
    fprintf(stderr, "usage: %s selftest|encode|decode|describe|control|timestamp|access|pairing\n", argv[0]);
    return 2;
}
