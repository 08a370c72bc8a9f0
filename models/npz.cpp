#include "models/npz.h"

#include <unistd.h>
#include <zip.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>

#include "blocks/file_safety.h"
#include "blocks/parse_number.h"

namespace trecvit {
namespace {

struct Dtype {
  const char* descr;
  torch::ScalarType type;
};
const Dtype kDtypes[] = {{"|b1", torch::kBool},   {"|u1", torch::kByte},   {"<i4", torch::kInt},
                         {"<i8", torch::kLong},   {"<f2", torch::kHalf},   {"<f4", torch::kFloat},
                         {"<f8", torch::kDouble}, {"|i1", torch::kChar}};

}  // namespace

torch::Tensor parse_npy(const std::string& b, const std::string& what) {
  if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0) throw NpyError(what + ": not a .npy array");
  const int major = static_cast<unsigned char>(b[6]);
  size_t header_len, offset;
  if (major == 1) {
    header_len = static_cast<unsigned char>(b[8]) | (static_cast<unsigned char>(b[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12) throw NpyError(what + ": truncated .npy header");
    uint32_t n;
    std::memcpy(&n, b.data() + 8, 4);
    header_len = n;
    offset = 12;
  } else {
    throw NpyError(what + ": unsupported .npy version " + std::to_string(major));
  }
  if (offset + header_len > b.size()) throw NpyError(what + ": truncated .npy header");
  const std::string header = b.substr(offset, header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([^']*)'")))
    throw NpyError(what + ": .npy header has no descr");
  const std::string descr = m[1];
  const Dtype* dt = nullptr;
  for (auto& d : kDtypes)
    if (descr == d.descr) dt = &d;
  if (!dt) throw NpyError(what + ": unsupported dtype '" + descr + "'");
  const bool fortran = std::regex_search(header, std::regex("'fortran_order':\\s*True"));
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)")))
    throw NpyError(what + ": .npy header has no shape");
  std::vector<int64_t> shape;
  std::stringstream ss(m[1].str());
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    const auto first = tok.find_first_not_of(" ");
    if (first == std::string::npos) continue;
    const auto last = tok.find_last_not_of(" ");
    const std::string digits = tok.substr(first, last - first + 1);
    if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos)
      throw NpyError(what + ": .npy shape entry '" + digits + "' is not a dimension (a non-negative integer)");
    shape.push_back(*parse_int(digits));
  }
  const size_t data_off = offset + header_len;
  // The data must hold the shape exactly; a product past the file's size (or past 2^63) is refused
  // before anything is allocated.
  const uint64_t available = b.size() - data_off, element = c10::elementSize(dt->type);
  uint64_t nbytes = element;
  for (auto s : shape) {
    if (s != 0 && nbytes > available / uint64_t(s) + 1)
      throw NpyError(what + ": .npy shape " + c10::str(c10::IntArrayRef(shape)) + " needs more bytes than the file's " +
                     std::to_string(available));
    nbytes *= uint64_t(s);
  }
  if (available != nbytes)
    throw NpyError(what + ": data holds " + std::to_string(b.size() - data_off) + " bytes, shape needs " +
                   std::to_string(nbytes));
  std::vector<int64_t> load_shape = shape;
  if (fortran) std::reverse(load_shape.begin(), load_shape.end());
  auto t = torch::empty(load_shape, torch::TensorOptions(dt->type));
  if (nbytes > 0) std::memcpy(t.data_ptr(), b.data() + data_off, nbytes);  // an empty tensor has no data pointer
  if (fortran) {
    std::vector<int64_t> perm(shape.size());
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = perm.size() - 1 - i;
    t = t.permute(perm).contiguous();
  }
  return t;
}

std::string serialize_npy(const torch::Tensor& t_in) {
  auto t = t_in.detach().to(torch::kCPU).contiguous();
  const Dtype* dt = nullptr;
  for (auto& d : kDtypes)
    if (d.type == t.scalar_type()) dt = &d;
  if (!dt) throw NpyError(std::string("npy: cannot write dtype ") + c10::toString(t.scalar_type()));
  std::string shape;  // "(3, 4)", "(3,)", "()"
  for (int64_t i = 0; i < t.dim(); ++i) shape += (i ? ", " : "") + std::to_string(t.size(i));
  if (t.dim() == 1) shape += ",";
  std::string header = std::string("{'descr': '") + dt->descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return out;
}

torch::Tensor read_npy(const std::string& path) {
  if (const auto why = unreadable_reason(path); !why.empty()) throw NpyError(path + ": " + why);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw NpyError(path + ": cannot open file");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return parse_npy(bytes, path);
}

void write_npy(const std::string& path, const torch::Tensor& t) {
  if (const auto why = write_file_atomically(path, serialize_npy(t)); !why.empty()) throw NpyError(path + ": " + why);
}

namespace {

// The size a member's directory entry declares is allocated before its bytes are read, so an
// entry that claims more than its stored bytes can hold is refused first: a stored member is
// exactly its compressed size, and deflate expands at most 1032:1.
std::string implausible_member_size(const zip_stat_t& st) {
  if (!(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_COMP_SIZE)) return "has no size in the zip directory";
  const double size = static_cast<double>(st.size), stored = static_cast<double>(st.comp_size);
  const bool is_stored = (st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method == ZIP_CM_STORE;
  if (is_stored && st.size != st.comp_size)
    return "declares " + std::to_string(st.size) + " bytes but stores " + std::to_string(st.comp_size) +
           " uncompressed";
  if (size > 1032 * stored + 1024)
    return "declares " + std::to_string(st.size) + " bytes from " + std::to_string(st.comp_size) +
           " compressed (more than deflate can expand)";
  if (size > physical_memory_bytes() / 2)
    return "declares " + std::to_string(st.size) + " bytes, more than half of this machine's memory";
  return "";
}

}  // namespace

NamedArrays read_npz(const std::string& path) {
  if (const auto why = unreadable_reason(path); !why.empty()) throw NpyError(path + ": " + why);
  int err = 0;
  std::unique_ptr<zip_t, decltype(&zip_discard)> z(zip_open(path.c_str(), ZIP_RDONLY, &err), &zip_discard);
  if (!z) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, err);
    std::string msg = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    throw NpyError(path + ": cannot read as .npz (" + msg + ")");
  }
  NamedArrays out;
  const zip_int64_t n = zip_get_num_entries(z.get(), 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    if (zip_stat_index(z.get(), i, 0, &st) != 0) throw NpyError(path + ": corrupt zip directory");
    std::string name = st.name;
    if (const auto why = implausible_member_size(st); !why.empty())
      throw NpyError(path + ": member '" + name + "' " + why);
    std::unique_ptr<zip_file_t, decltype(&zip_fclose)> f(zip_fopen_index(z.get(), i, 0), &zip_fclose);
    if (!f) throw NpyError(path + ": cannot open member '" + name + "': " + zip_strerror(z.get()));
    std::string bytes(st.size, '\0');
    if (zip_fread(f.get(), bytes.data(), st.size) != static_cast<zip_int64_t>(st.size))
      throw NpyError(path + ": member '" + name + "' is truncated or corrupt");
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    out.emplace_back(name, parse_npy(bytes, path + ":" + name));
  }
  return out;
}

void write_npz(const std::string& path, const NamedArrays& arrays) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  std::remove(tmp.c_str());
  int err = 0;
  zip_t* z = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!z) throw NpyError(path + ": cannot create archive");
  std::vector<std::string> buffers;  // libzip reads sources at zip_close
  buffers.reserve(arrays.size());
  for (auto& [key, t] : arrays) {
    buffers.push_back(serialize_npy(t));
    zip_source_t* src = zip_source_buffer(z, buffers.back().data(), buffers.back().size(), 0);
    zip_int64_t idx = src ? zip_file_add(z, (key + ".npy").c_str(), src, ZIP_FL_OVERWRITE | ZIP_FL_ENC_UTF_8) : -1;
    if (idx < 0) {
      if (src) zip_source_free(src);
      std::string msg = zip_strerror(z);
      zip_discard(z);
      throw NpyError(path + ": cannot add '" + key + "': " + msg);
    }
    zip_set_file_compression(z, idx, ZIP_CM_STORE, 0);  // np.savez stores uncompressed
  }
  if (zip_close(z) != 0) {
    std::string msg = zip_strerror(z);
    zip_discard(z);
    std::remove(tmp.c_str());
    throw NpyError(path + ": write failed: " + msg);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw NpyError(path + ": cannot rename temporary archive into place");
  }
}

}  // namespace trecvit
