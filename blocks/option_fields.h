#pragma once
// Declarative option tables: one row per field of an Options struct (its name, a check and a
// line of doc) drives JSON parsing with type and range checks that name the field, rejection of
// unknown fields, to_json and the generated docs. The field's type and default stay where
// LibTorch keeps them: in the Options struct (TORCH_ARG) itself.
#include <cmath>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace trecvit {

// A bad value: `field` (relative to the table) and why.
struct FieldError : std::runtime_error {
  FieldError(std::string field_, const std::string& reason_)
      : std::runtime_error(field_ + ": " + reason_), field(std::move(field_)), reason(reason_) {}
  std::string field, reason;
};

// What a value must satisfy, and how the docs state it.
struct Check {
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;
  std::vector<std::string> choices;
  static Check range(double lo, double hi, bool lo_open, bool hi_open) {
    Check k;
    k.lo = lo;
    k.hi = hi;
    k.lo_open = lo_open;
    k.hi_open = hi_open;
    return k;
  }
  static Check at_least(double v) { return range(v, std::numeric_limits<double>::infinity(), false, false); }
  static Check above(double v) { return range(v, std::numeric_limits<double>::infinity(), true, false); }
  static Check in(double lo, double hi) { return range(lo, hi, false, false); }            // [lo, hi]
  static Check in_half_open(double lo, double hi) { return range(lo, hi, false, true); }  // [lo, hi)
  static Check in_open(double lo, double hi) { return range(lo, hi, true, true); }        // (lo, hi)
  static Check one_of(std::vector<std::string> c) {
    Check k;
    k.choices = std::move(c);
    return k;
  }
  std::string describe() const;            // ">= 1", "in [0, 1)", "gelu, relu", "any"
  std::string violation(double v) const;   // "" when v passes
  std::string violation(const std::string& v) const;
};

struct FieldInfo {
  std::string name, type, doc;  // type: integer | number | string | boolean
  Check check;
};

template <class O>
struct Field {
  FieldInfo info;
  std::function<void(O&, const nlohmann::json&)> read;  // throws FieldError
  std::function<nlohmann::json(const O&)> write;
};

namespace detail {
template <class T>
const char* json_type() {
  if constexpr (std::is_same_v<T, bool>) return "boolean";
  else if constexpr (std::is_integral_v<T>) return "integer";
  else if constexpr (std::is_floating_point_v<T>) return "number";
  else return "string";
}
template <class T>
T parse(const std::string& name, const nlohmann::json& v, const Check& c) {
  auto bad = [&](const std::string& what) { throw FieldError(name, what + ", got " + v.dump()); };
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) bad("must be true or false");
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    // 1e4 is an integer too; 2^64 - 1 is not an int64 (and must not wrap to -1).
    const double d = v.is_number() ? v.get<double>() : 0.5;
    if (!v.is_number() || std::floor(d) != d) bad("must be an integer");
    const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                      : v.is_number_integer()
                          ? v.get<int64_t>() >= static_cast<int64_t>(std::numeric_limits<T>::min())
                          : d >= static_cast<double>(std::numeric_limits<T>::min()) &&
                                d < static_cast<double>(std::numeric_limits<T>::max());
    if (!fits) bad(std::is_unsigned_v<T> ? "must be an integer in [0, 2^64)" : "must be an integer in [-2^63, 2^63)");
    if (auto why = c.violation(d); !why.empty()) bad("must be " + why);
    return v.is_number_float() ? static_cast<T>(d) : v.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) bad("must be a number");
    if (auto why = c.violation(v.get<double>()); !why.empty()) bad("must be " + why);
    return v.get<T>();
  } else {
    if (!v.is_string()) bad("must be a string");
    if (auto why = c.violation(v.get<std::string>()); !why.empty()) bad("must be " + why);
    return v.get<std::string>();
  }
}
}  // namespace detail

// A row for the member reached by `get` ([](O& o) -> T& { ... }).
template <class O, class Get>
Field<O> field(std::string name, Get get, std::string doc, Check check = {}) {
  using T = std::remove_reference_t<decltype(get(std::declval<O&>()))>;
  Field<O> f;
  f.info = {name, detail::json_type<T>(), std::move(doc), check};
  f.read = [name, get, check](O& o, const nlohmann::json& v) { get(o) = detail::parse<T>(name, v, check); };
  f.write = [get](const O& o) { return nlohmann::json(get(const_cast<O&>(o))); };
  return f;
}

// Rows for TORCH_ARG accessors and for plain struct members.
#define TRECVIT_ARG_FIELD(Options, name, doc, ...) \
  ::trecvit::field<Options>(#name, [](Options& o) -> auto& { return o.name(); }, doc, ##__VA_ARGS__)
#define TRECVIT_MEMBER_FIELD(Struct, name, doc, ...) \
  ::trecvit::field<Struct>(#name, [](Struct& o) -> auto& { return o.name; }, doc, ##__VA_ARGS__)

template <class O>
class FieldTable {
 public:
  FieldTable(std::vector<Field<O>> fields) : fields_(std::move(fields)) {}
  // Reads the fields present in `j` (an object); unknown keys and bad values throw FieldError.
  // `what` names the owner in the unknown-field message ("a 'peer' mixer"); `others` are the
  // owner's fields that the caller reads itself (listed in that message too).
  void read(O& o, const nlohmann::json& j, const std::string& what, const std::string& others = "") const {
    if (!j.is_object()) throw FieldError("", "must be a JSON object, got " + j.dump());
    for (auto it = j.begin(); it != j.end(); ++it) {
      const Field<O>* f = find(it.key());
      if (!f)
        throw FieldError(it.key(), "unknown field for " + what + " (fields: " + names() +
                                       (others.empty() ? "" : ", " + others) + ")");
      f->read(o, it.value());
    }
  }
  nlohmann::json write(const O& o) const {
    nlohmann::json j = nlohmann::json::object();
    for (auto& f : fields_) j[f.info.name] = f.write(o);
    return j;
  }
  const Field<O>* find(const std::string& name) const {
    for (auto& f : fields_)
      if (f.info.name == name) return &f;
    return nullptr;
  }
  std::string names() const {
    std::string s;
    for (auto& f : fields_) s += (s.empty() ? "" : ", ") + f.info.name;
    return s;
  }
  std::vector<FieldInfo> infos() const {
    std::vector<FieldInfo> v;
    for (auto& f : fields_) v.push_back(f.info);
    return v;
  }
  const std::vector<Field<O>>& fields() const { return fields_; }

 private:
  std::vector<Field<O>> fields_;
};

// A Markdown table of fields with the defaults of `defaults` (for the generated docs).
std::string fields_markdown(const std::vector<FieldInfo>& fields, const nlohmann::json& defaults);

}  // namespace trecvit
