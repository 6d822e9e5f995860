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
