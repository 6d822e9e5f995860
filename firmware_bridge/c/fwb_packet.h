/*
 * biomoe-edge native wearable protocol: reference packet encoder/decoder (PROTOCOL.md beside this folder).
 *
 * Portable C99: no heap, no BLE stack, no floating-point maths (float32 values are copied bit for bit),
 * byte order handled explicitly so the same code runs on little- and big-endian MCUs.
 * Drop fwb_packet.c/.h into an nRF52 (nRF Connect SDK / SoftDevice) or ESP32 (NimBLE / Bluedroid) project and
 * send the bytes fwb_encode_*() writes as one notification of the data characteristic.
 */
#ifndef FWB_PACKET_H
#define FWB_PACKET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FWB_PROTOCOL_VERSION 1u
#define FWB_HEADER_SIZE 11u
#define FWB_CRC_SIZE 2u
#define FWB_OVERHEAD (FWB_HEADER_SIZE + FWB_CRC_SIZE) /* 13 bytes */
#define FWB_ATT_DEFAULT_MTU 23u
#define FWB_ATT_NOTIFY_OVERHEAD 3u /* notification value <= MTU - 3 */
#define FWB_MAX_SAMPLE_COUNT 255u
#define FWB_MAX_CHANNELS 255u

typedef enum {
    FWB_FORMAT_INT16 = 1,
    FWB_FORMAT_INT24 = 2,
    FWB_FORMAT_FLOAT32 = 3
} fwb_format_t;

/* Every function returning int32_t gives a byte count (>= 0) or one of these (< 0). */
typedef enum {
    FWB_OK = 0,
    FWB_ERR_TRUNCATED = -1,   /* fewer bytes than the header announces */
    FWB_ERR_LENGTH = -2,      /* more bytes than the header announces */
    FWB_ERR_CRC = -3,         /* CRC-16/CCITT-FALSE mismatch */
    FWB_ERR_VERSION = -4,     /* protocol version other than 1 */
    FWB_ERR_FORMAT = -5,      /* unknown sample format code */
    FWB_ERR_COUNT = -6,       /* zero samples or zero channels */
    FWB_ERR_BUFFER = -7,      /* output buffer too small */
    FWB_ERR_RANGE = -8,       /* a value does not fit the sample format */
    FWB_ERR_ARGUMENT = -9     /* NULL pointer */
} fwb_status_t;

/* A decoded packet: header fields plus a view of the payload inside the caller's buffer (no copy). */
typedef struct {
    uint8_t version;
    uint8_t stream_id;
    uint16_t sequence;
    uint32_t timestamp_us; /* device clock of the first sample; wraps every 2^32 us */
    uint8_t sample_format; /* fwb_format_t */
    uint8_t sample_count;  /* samples per channel */
    uint8_t channel_count;
    const uint8_t *payload; /* sample-major: s0c0 s0c1 ... s1c0 ... */
    size_t payload_size;
} fwb_packet_t;

/* CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR); check("123456789") = 0x29B1. */
uint16_t fwb_crc16_update(uint16_t crc, const uint8_t *data, size_t size);
uint16_t fwb_crc16(const uint8_t *data, size_t size);

/* Bytes per value of a format (2, 3, 4), 0 for an unknown code. */
size_t fwb_format_size(uint8_t sample_format);
/* Whole packet size for n samples x channels, 0 if any argument is invalid. */
size_t fwb_packet_size(uint8_t sample_format, uint8_t sample_count, uint8_t channel_count);
/* Samples per channel that fit one notification at ATT MTU `mtu`; 0 if none (or bad arguments). */
uint8_t fwb_max_samples(uint16_t mtu, uint8_t channel_count, uint8_t sample_format);

/* Encode int16/int24 samples given as int32 (sample-major, n*channels values). Returns bytes written or < 0. */
int32_t fwb_encode_int(uint8_t *out, size_t out_capacity, uint8_t stream_id, uint16_t sequence,
                       uint32_t timestamp_us, uint8_t sample_format, const int32_t *samples,
                       uint8_t sample_count, uint8_t channel_count);
/* Encode float32 samples (sample-major). Returns bytes written or < 0. */
int32_t fwb_encode_float32(uint8_t *out, size_t out_capacity, uint8_t stream_id, uint16_t sequence,
                           uint32_t timestamp_us, const float *samples, uint8_t sample_count,
                           uint8_t channel_count);

/* Validate and parse; returns FWB_OK or a negative fwb_status_t. Checks, in order: header length, version,
 * format, counts, exact length, CRC. */
int32_t fwb_decode(const uint8_t *data, size_t size, fwb_packet_t *packet);
/* Value `sample`, `channel` of a decoded int16/int24 packet, sign-extended. */
int32_t fwb_get_int(const fwb_packet_t *packet, size_t sample, size_t channel);
/* Value `sample`, `channel` of a decoded float32 packet. */
float fwb_get_float32(const fwb_packet_t *packet, size_t sample, size_t channel);

/* ---- Device description (PROTOCOL.md section 5) ---- */
#define FWB_DESCRIPTION_VERSION 1u
#define FWB_MAX_STREAMS 16u

typedef struct {
    uint8_t stream_id;
    uint8_t sample_format; /* fwb_format_t */
    uint8_t channels;
    double sample_rate_hz; /* > 0 */
    double scale;          /* physical = raw * scale + offset */
    double offset;
    const char *modality; /* NUL-terminated UTF-8, 1..255 bytes: "ecg", "bvp", "eda", "resp", "spo2", ... */
    const char *units;    /* NUL-terminated UTF-8, 0..255 bytes; NULL means "" */
} fwb_stream_desc_t;

/* Serialise the description characteristic value (needs a 64-bit IEEE-754 double). Returns bytes written or
 * < 0 (FWB_ERR_BUFFER, FWB_ERR_COUNT for 0 or > 16 streams, FWB_ERR_RANGE for an over-long string or a bad
 * field, FWB_ERR_FORMAT, FWB_ERR_ARGUMENT). */
int32_t fwb_encode_description(uint8_t *out, size_t out_capacity, const char *firmware_version,
                               const fwb_stream_desc_t *streams, uint8_t stream_count);

/* ---- Control characteristic (PROTOCOL.md section 6) ---- */
#define FWB_OP_START 0x01u
#define FWB_OP_STOP 0x02u
#define FWB_OP_CONFIGURE 0x03u
#define FWB_ALL_STREAMS 0xFFu
/* ATT error codes to answer a bad control write with. */
#define FWB_ATT_ERR_INVALID_LENGTH 0x0D
#define FWB_ATT_ERR_UNKNOWN_OPCODE 0x80
#define FWB_ATT_ERR_UNKNOWN_STREAM 0x81
#define FWB_ATT_ERR_INVALID_PARAMETER 0x82
#define FWB_ATT_ERR_MTU_TOO_SMALL 0x83
#define FWB_ATT_ERR_BUSY 0x84

typedef struct {
    uint8_t opcode;
    uint8_t stream_id;
    float sample_rate_hz;       /* CONFIGURE only; 0 = keep */
    uint8_t samples_per_packet; /* CONFIGURE only; 0 = as many as the MTU allows */
} fwb_control_t;

/* Parse a control write. Returns 0, or the ATT error code to answer the write with (> 0). Checking that the
 * stream exists, the rate is supported and the stream is stopped is the application's (0x81, 0x82, 0x84). */
int fwb_decode_control(const uint8_t *data, size_t size, fwb_control_t *command);

/* ---- Link security (PROTOCOL.md section 11) ---- */
typedef enum {
    FWB_SECURITY_NONE = 0,      /* open: the protocol as first published */
    FWB_SECURITY_ENCRYPTED = 1, /* an encrypted link, whatever the pairing */
    FWB_SECURITY_BONDED = 2     /* an encrypted link whose key comes from an LE Secure Connections bond */
} fwb_security_t;
#define FWB_ATT_ERR_INSUFFICIENT_AUTHENTICATION 0x05 /* not paired: the central should pair */
#define FWB_ATT_ERR_INSUFFICIENT_ENCRYPTION 0x0F     /* paired, link not encrypted: the central should encrypt */
#define FWB_SMP_AUTH_REQ_BONDING 0x01u               /* AuthReq Bonding_Flags (bits 0-1) = 01: bonding */
#define FWB_SMP_AUTH_REQ_SC 0x08u                    /* AuthReq SC bit: LE Secure Connections */
#define FWB_SMP_ERR_AUTHENTICATION_REQUIREMENTS 0x03 /* SMP Pairing Failed reason */

/* May a protocol characteristic (the description, control, the data CCCD) be read or written on this link? The link
 * is `encrypted` or not (nonzero: yes), with a key the board holds for the peer (`bonded`) that came from LE Secure
 * Connections (`secure_connections`). Returns 0, or the ATT error code to answer the access with. For stacks that
 * call the application per access; stacks with declarative permissions take the table of section 11 instead. An
 * unknown `required` level is treated as FWB_SECURITY_BONDED (fail closed). */
int fwb_check_access(uint8_t required, int encrypted, int bonded, int secure_connections);

/* Should the board go on with a Pairing Request whose AuthReq octet is `auth_req`? Returns 0, or the reason of the
 * SMP Pairing Failed to answer with: a bonded board takes only requests for bonding under Secure Connections. */
int fwb_check_pairing(uint8_t required, uint8_t auth_req);

/* Device timestamp of sample `sample_index` of a stream sampled at `rate_millihz` / 1000 Hz, from the sample
 * counter (no accumulated rounding; PROTOCOL.md section 7): round(index * 1e9 / rate_millihz) mod 2^32.
 * Exact while sample_index * 1e9 < 2^64 (e.g. 213 days at 1 kHz). */
uint32_t fwb_sample_timestamp_us(uint64_t sample_index, uint32_t rate_millihz);

/* Name of a status ("crc", "truncated", ...), as the shared test vectors spell them. */
const char *fwb_status_name(int32_t status);

#ifdef __cplusplus
}
#endif

#endif /* FWB_PACKET_H */
