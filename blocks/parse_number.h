#pragma once
// Whole-string number parsing that never throws. std::stoll and friends accept "12abc", and on bad
// input throw exceptions whose what() is only "stoll", which then reaches users; the sources call
// these instead (a source test keeps it so).
#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

namespace trecvit {

namespace detail {
template <class T>
std::optional<T> parse_whole(std::string_view s) {
  T v{};
  const char* end = s.data() + s.size();
  const auto [p, ec] = std::from_chars(s.data(), end, v);
  if (s.empty() || ec != std::errc() || p != end) return std::nullopt;
  return v;
}
}  // namespace detail

// The integer spelled by all of `s` (an optional '-' and decimal digits), or nullopt for anything
// else: empty, other characters, or out of int64_t's range.
inline std::optional<int64_t> parse_int(std::string_view s) { return detail::parse_whole<int64_t>(s); }

// The decimal or scientific number spelled by all of `s` ("inf" and "nan" included: callers
// that need a finite value check it), or nullopt.
inline std::optional<double> parse_double(std::string_view s) { return detail::parse_whole<double>(s); }

}  // namespace trecvit
