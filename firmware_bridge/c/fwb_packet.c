/* Reference implementation of fwb_packet.h; see PROTOCOL.md for the byte layout. */
#include "fwb_packet.h"

#include <string.h>

/* float32 values travel as their IEEE-754 bit pattern; refuse to build where float is not 32 bits. */
typedef char fwb_float_is_32_bits[(sizeof(float) == 4) ? 1 : -1];

uint16_t fwb_crc16_update(uint16_t crc, const uint8_t *data, size_t size)
{
    size_t i;
    int bit;
    for (i = 0; i < size; ++i) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (bit = 0; bit < 8; ++bit) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

uint16_t fwb_crc16(const uint8_t *data, size_t size)
{
    return fwb_crc16_update(0xFFFFu, data, size);
}

size_t fwb_format_size(uint8_t sample_format)
{
    switch (sample_format) {
    case FWB_FORMAT_INT16: return 2u;
    case FWB_FORMAT_INT24: return 3u;
    case FWB_FORMAT_FLOAT32: return 4u;
    default: return 0u;
    }
}

size_t fwb_packet_size(uint8_t sample_format, uint8_t sample_count, uint8_t channel_count)
{
    size_t value_size = fwb_format_size(sample_format);
    if (value_size == 0u || sample_count == 0u || channel_count == 0u) {
        return 0u;
    }
    return FWB_OVERHEAD + (size_t)sample_count * channel_count * value_size;
}

uint8_t fwb_max_samples(uint16_t mtu, uint8_t channel_count, uint8_t sample_format)
{
    size_t value_size = fwb_format_size(sample_format);
    size_t room, n;
    if (value_size == 0u || channel_count == 0u || mtu < FWB_ATT_DEFAULT_MTU) {
        return 0u;
    }
    room = (size_t)mtu - FWB_ATT_NOTIFY_OVERHEAD - FWB_OVERHEAD;
    n = room / ((size_t)channel_count * value_size);
    return (uint8_t)(n > FWB_MAX_SAMPLE_COUNT ? FWB_MAX_SAMPLE_COUNT : n);
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | ((uint16_t)p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Header + checks shared by both encoders; returns the total size or < 0. */
static int32_t begin_packet(uint8_t *out, size_t out_capacity, uint8_t stream_id, uint16_t sequence,
                            uint32_t timestamp_us, uint8_t sample_format, uint8_t sample_count,
                            uint8_t channel_count)
{
    size_t size;
    if (out == NULL) {
        return FWB_ERR_ARGUMENT;
    }
    if (fwb_format_size(sample_format) == 0u) {
        return FWB_ERR_FORMAT;
    }
    size = fwb_packet_size(sample_format, sample_count, channel_count);
    if (size == 0u) {
        return FWB_ERR_COUNT;
    }
    if (size > out_capacity) {
        return FWB_ERR_BUFFER;
    }
    out[0] = (uint8_t)FWB_PROTOCOL_VERSION;
    out[1] = stream_id;
    put_u16(out + 2, sequence);
    put_u32(out + 4, timestamp_us);
    out[8] = sample_format;
    out[9] = sample_count;
    out[10] = channel_count;
    return (int32_t)size;
}

static int32_t finish_packet(uint8_t *out, int32_t size)
{
    put_u16(out + size - FWB_CRC_SIZE, fwb_crc16(out, (size_t)size - FWB_CRC_SIZE));
    return size;
}

int32_t fwb_encode_int(uint8_t *out, size_t out_capacity, uint8_t stream_id, uint16_t sequence,
                       uint32_t timestamp_us, uint8_t sample_format, const int32_t *samples,
                       uint8_t sample_count, uint8_t channel_count)
{
    int32_t size, low, high;
    size_t i, count;
    uint8_t *p;
    if (samples == NULL) {
        return FWB_ERR_ARGUMENT;
    }
    if (sample_format == FWB_FORMAT_INT16) {
        low = -32768L;
        high = 32767L;
    } else if (sample_format == FWB_FORMAT_INT24) {
        low = -8388608L;
        high = 8388607L;
    } else {
        return FWB_ERR_FORMAT;
    }
    count = (size_t)sample_count * channel_count;
    for (i = 0; i < count; ++i) {
        if (samples[i] < low || samples[i] > high) {
            return FWB_ERR_RANGE;
        }
    }
    size = begin_packet(out, out_capacity, stream_id, sequence, timestamp_us, sample_format, sample_count,
                        channel_count);
    if (size < 0) {
        return size;
    }
    p = out + FWB_HEADER_SIZE;
    for (i = 0; i < count; ++i) {
        /* Two's complement via the unsigned conversion, which C defines modulo 2^32. */
        uint32_t u = (uint32_t)samples[i];
        *p++ = (uint8_t)(u & 0xFFu);
        *p++ = (uint8_t)((u >> 8) & 0xFFu);
        if (sample_format == FWB_FORMAT_INT24) {
            *p++ = (uint8_t)((u >> 16) & 0xFFu);
        }
    }
    return finish_packet(out, size);
}

int32_t fwb_encode_float32(uint8_t *out, size_t out_capacity, uint8_t stream_id, uint16_t sequence,
                           uint32_t timestamp_us, const float *samples, uint8_t sample_count,
                           uint8_t channel_count)
{
    int32_t size;
    size_t i, count;
    if (samples == NULL) {
        return FWB_ERR_ARGUMENT;
    }
    size = begin_packet(out, out_capacity, stream_id, sequence, timestamp_us, FWB_FORMAT_FLOAT32, sample_count,
                        channel_count);
    if (size < 0) {
        return size;
    }
    count = (size_t)sample_count * channel_count;
    for (i = 0; i < count; ++i) {
        uint32_t bits;
        memcpy(&bits, &samples[i], sizeof bits);
        put_u32(out + FWB_HEADER_SIZE + 4u * i, bits);
    }
    return finish_packet(out, size);
}

int32_t fwb_decode(const uint8_t *data, size_t size, fwb_packet_t *packet)
{
    size_t expected;
    if (data == NULL || packet == NULL) {
        return FWB_ERR_ARGUMENT;
    }
    if (size < FWB_OVERHEAD) {
        return FWB_ERR_TRUNCATED;
    }
    if (data[0] != FWB_PROTOCOL_VERSION) {
        return FWB_ERR_VERSION;
    }
    if (fwb_format_size(data[8]) == 0u) {
        return FWB_ERR_FORMAT;
    }
    expected = fwb_packet_size(data[8], data[9], data[10]);
    if (expected == 0u) {
        return FWB_ERR_COUNT;
    }
    if (size < expected) {
        return FWB_ERR_TRUNCATED;
    }
    if (size > expected) {
        return FWB_ERR_LENGTH;
    }
    if (get_u16(data + size - FWB_CRC_SIZE) != fwb_crc16(data, size - FWB_CRC_SIZE)) {
        return FWB_ERR_CRC;
    }
    packet->version = data[0];
    packet->stream_id = data[1];
    packet->sequence = get_u16(data + 2);
    packet->timestamp_us = get_u32(data + 4);
    packet->sample_format = data[8];
    packet->sample_count = data[9];
    packet->channel_count = data[10];
    packet->payload = data + FWB_HEADER_SIZE;
    packet->payload_size = size - FWB_OVERHEAD;
    return FWB_OK;
}

int32_t fwb_get_int(const fwb_packet_t *packet, size_t sample, size_t channel)
{
    size_t value_size = fwb_format_size(packet->sample_format);
    const uint8_t *p = packet->payload + (sample * packet->channel_count + channel) * value_size;
    uint32_t u;
    if (packet->sample_format == FWB_FORMAT_INT16) {
        u = get_u16(p);
        return (u & 0x8000u) ? (int32_t)u - 65536L : (int32_t)u;
    }
    u = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
    return (u & 0x800000uL) ? (int32_t)u - 16777216L : (int32_t)u;
}

float fwb_get_float32(const fwb_packet_t *packet, size_t sample, size_t channel)
{
    uint32_t bits = get_u32(packet->payload + (sample * packet->channel_count + channel) * 4u);
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* f64 values travel as their IEEE-754 bit pattern too. */
typedef char fwb_double_is_64_bits[(sizeof(double) == 8) ? 1 : -1];

static void put_f64(uint8_t *p, double value)
{
    uint64_t bits;
    int i;
    memcpy(&bits, &value, sizeof bits);
    for (i = 0; i < 8; ++i) {
        p[i] = (uint8_t)((bits >> (8 * i)) & 0xFFu);
    }
}

/* Writes a u8 length + the string; returns bytes written or < 0. */
static int32_t put_short_string(uint8_t *out, size_t capacity, size_t at, const char *text)
{
    size_t length = text == NULL ? 0u : strlen(text);
    if (length > 255u) {
        return FWB_ERR_RANGE;
    }
    if (at + 1u + length > capacity) {
        return FWB_ERR_BUFFER;
    }
    out[at] = (uint8_t)length;
    if (length > 0u) {
        memcpy(out + at + 1u, text, length);
    }
    return (int32_t)(1u + length);
}

int32_t fwb_encode_description(uint8_t *out, size_t out_capacity, const char *firmware_version,
                               const fwb_stream_desc_t *streams, uint8_t stream_count)
{
    size_t at = 0;
    int32_t written;
    uint8_t i, j;
    if (out == NULL || firmware_version == NULL || streams == NULL) {
        return FWB_ERR_ARGUMENT;
    }
    if (stream_count == 0u || stream_count > FWB_MAX_STREAMS) {
        return FWB_ERR_COUNT;
    }
    if (out_capacity < 1u) {
        return FWB_ERR_BUFFER;
    }
    out[at++] = (uint8_t)FWB_DESCRIPTION_VERSION;
    written = put_short_string(out, out_capacity, at, firmware_version);
    if (written < 0) {
        return written;
    }
    at += (size_t)written;
    if (at + 1u > out_capacity) {
        return FWB_ERR_BUFFER;
    }
    out[at++] = stream_count;
    for (i = 0; i < stream_count; ++i) {
        const fwb_stream_desc_t *s = &streams[i];
        for (j = 0; j < i; ++j) {
            if (streams[j].stream_id == s->stream_id) {
                return FWB_ERR_RANGE; /* stream ids must be unique */
            }
        }
        if (fwb_format_size(s->sample_format) == 0u) {
            return FWB_ERR_FORMAT;
        }
        /* !(x > 0) also refuses NaN; x - x != 0 is true for NaN and the infinities. */
        if (s->channels == 0u || !(s->sample_rate_hz > 0.0) || s->sample_rate_hz - s->sample_rate_hz != 0.0 ||
            s->scale - s->scale != 0.0 || s->offset - s->offset != 0.0 || s->modality == NULL ||
            s->modality[0] == '\0') {
            return FWB_ERR_RANGE;
        }
        if (at + 27u > out_capacity) {
            return FWB_ERR_BUFFER;
        }
        out[at++] = s->stream_id;
        out[at++] = s->sample_format;
        out[at++] = s->channels;
        put_f64(out + at, s->sample_rate_hz);
        put_f64(out + at + 8u, s->scale);
        put_f64(out + at + 16u, s->offset);
        at += 24u;
        written = put_short_string(out, out_capacity, at, s->modality);
        if (written < 0) {
            return written;
        }
        at += (size_t)written;
        written = put_short_string(out, out_capacity, at, s->units);
        if (written < 0) {
            return written;
        }
        at += (size_t)written;
    }
    if (at + FWB_CRC_SIZE > out_capacity) {
        return FWB_ERR_BUFFER;
    }
    put_u16(out + at, fwb_crc16(out, at));
    return (int32_t)(at + FWB_CRC_SIZE);
}

int fwb_decode_control(const uint8_t *data, size_t size, fwb_control_t *command)
{
    uint32_t bits;
    float rate;
    if (data == NULL || command == NULL || size == 0u) {
        return FWB_ATT_ERR_INVALID_LENGTH;
    }
    if (data[0] != FWB_OP_START && data[0] != FWB_OP_STOP && data[0] != FWB_OP_CONFIGURE) {
        return FWB_ATT_ERR_UNKNOWN_OPCODE;
    }
    if (size != (data[0] == FWB_OP_CONFIGURE ? 7u : 2u)) {
        return FWB_ATT_ERR_INVALID_LENGTH;
    }
    command->opcode = data[0];
    command->stream_id = data[1];
    command->sample_rate_hz = 0.0f;
    command->samples_per_packet = 0u;
    if (data[0] == FWB_OP_CONFIGURE) {
        bits = get_u32(data + 2);
        memcpy(&rate, &bits, sizeof rate);
        if (!(rate >= 0.0f) || rate - rate != 0.0f) { /* NaN, negative or infinite */
            return FWB_ATT_ERR_INVALID_PARAMETER;
        }
        command->sample_rate_hz = rate;
        command->samples_per_packet = data[6];
    }
    return 0;
}

int fwb_check_access(uint8_t required, int encrypted, int bonded, int secure_connections)
{
    if (required == FWB_SECURITY_NONE) {
        return 0;
    }
    if (!encrypted) {
        return bonded ? FWB_ATT_ERR_INSUFFICIENT_ENCRYPTION : FWB_ATT_ERR_INSUFFICIENT_AUTHENTICATION;
    }
    if (required != FWB_SECURITY_ENCRYPTED && !(bonded && secure_connections)) {
        return FWB_ATT_ERR_INSUFFICIENT_AUTHENTICATION;
    }
    return 0;
}

int fwb_check_pairing(uint8_t required, uint8_t auth_req)
{
    if (required == FWB_SECURITY_NONE || required == FWB_SECURITY_ENCRYPTED) {
        return 0;
    }
    if ((auth_req & 0x03u) != FWB_SMP_AUTH_REQ_BONDING || (auth_req & FWB_SMP_AUTH_REQ_SC) == 0u) {
        return FWB_SMP_ERR_AUTHENTICATION_REQUIREMENTS;
    }
    return 0;
}

uint32_t fwb_sample_timestamp_us(uint64_t sample_index, uint32_t rate_millihz)
{
    uint64_t numerator;
    if (rate_millihz == 0u) {
        return 0u;
    }
    numerator = sample_index * 1000000000u + rate_millihz / 2u; /* round half up */
    return (uint32_t)((numerator / rate_millihz) & 0xFFFFFFFFu);
}

const char *fwb_status_name(int32_t status)
{
    switch (status) {
    case FWB_OK: return "ok";
    case FWB_ERR_TRUNCATED: return "truncated";
    case FWB_ERR_LENGTH: return "length";
    case FWB_ERR_CRC: return "crc";
    case FWB_ERR_VERSION: return "version";
    case FWB_ERR_FORMAT: return "format";
    case FWB_ERR_COUNT: return "count";
    case FWB_ERR_BUFFER: return "buffer";
    case FWB_ERR_RANGE: return "range";
    case FWB_ERR_ARGUMENT: return "argument";
    default: return "unknown";
    }
}
