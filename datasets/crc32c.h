#pragma once
// CRC-32C (Castagnoli), as TFRecord framing uses it: the SSE4.2 crc32 instruction when the CPU
// has it, a slicing table otherwise (both give the same values; a test checks them against each
// other and against the standard check value crc32c("123456789") = 0xE3069283).
#include <cstddef>
#include <cstdint>

namespace trecvit::data {

uint32_t crc32c(const void* data, size_t size);
// The table implementation alone (for the tests and the machines without SSE4.2).
uint32_t crc32c_portable(const void* data, size_t size);
bool crc32c_uses_sse42();

// TFRecord's masking: ((crc >> 15) | (crc << 17)) + 0xa282ead8, so CRCs of CRCs stay useful.
inline uint32_t mask_crc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
inline uint32_t masked_crc32c(const void* data, size_t size) { return mask_crc32c(crc32c(data, size)); }

}  // namespace trecvit::data
