#include "runtime/core/Npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include <fmt/format.h>

#include "runtime/core/AtomicFile.h"
#include "runtime/core/RuntimeError.h"

namespace attnc {

static_assert(std::endian::native == std::endian::little, "the .npy reader assumes a little-endian host");

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;

[[noreturn]] void fail(const std::string& name, const std::string& message) {
  throw RuntimeError(fmt::format("{}: {}", name, message));
}

// The part of a Python literal that .npy headers use: the dict, its string keys, and values that
// are strings, True/False, integers or tuples of integers. Lists (structured dtypes) are parsed
// only far enough to be reported as unsupported.
struct HeaderValue {
  enum class Kind { String, Bool, Int, Tuple, List } kind = Kind::String;
  std::string text;
  bool flag = false;
  int64_t number = 0;
  std::vector<int64_t> items;
};

class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& name) : text_(text), name_(name) {}

  // dict := "{" [ key ":" value { "," key ":" value } [","] ] "}"
  std::vector<std::pair<std::string, HeaderValue>> parse_dict() {
    std::vector<std::pair<std::string, HeaderValue>> entries;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      std::string key = parse_string();
      expect(':');
      entries.emplace_back(std::move(key), parse_value());
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') error("expected ',' or '}'");
    }
    ++pos_;
    skip_space();
    if (pos_ != text_.size()) error("unexpected text after the header dictionary");
    return entries;
  }

 private:
  // value := string | "True" | "False" | integer | "(" [ integer { "," integer } [","] ] ")" | list
  HeaderValue parse_value() {
    skip_space();
    HeaderValue value;
    char c = peek();
    if (c == '\'' || c == '"') {
      value.kind = HeaderValue::Kind::String;
      value.text = parse_string();
    } else if (text_.substr(pos_, 4) == "True") {
      value.kind = HeaderValue::Kind::Bool;
      value.flag = true;
      pos_ += 4;
    } else if (text_.substr(pos_, 5) == "False") {
      value.kind = HeaderValue::Kind::Bool;
      pos_ += 5;
    } else if (c == '(') {
      value.kind = HeaderValue::Kind::Tuple;
      ++pos_;
      while (true) {
        skip_space();
        if (peek() == ')') break;
        value.items.push_back(parse_int());
        skip_space();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        if (peek() != ')') error("expected ',' or ')' in a tuple");
      }
      ++pos_;
    } else if (c == '[') {
      value.kind = HeaderValue::Kind::List;
      skip_balanced();
    } else {
      value.kind = HeaderValue::Kind::Int;
      value.number = parse_int();
    }
    return value;
  }

  std::string parse_string() {
    skip_space();
    char quote = peek();
    if (quote != '\'' && quote != '"') error("expected a quoted string");
    size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) error("unterminated string");
    std::string out(text_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return out;
  }

  int64_t parse_int() {
    skip_space();
    size_t start = pos_;
    int64_t value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      int digit = text_[pos_] - '0';
      if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) error("integer too large");
      value = value * 10 + digit;
      ++pos_;
    }
    if (pos_ == start) error("expected a non-negative integer");
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2 longs, in old files
    return value;
  }

  void skip_balanced() {
    int depth = 0;
    do {
      if (pos_ >= text_.size()) error("unbalanced brackets");
      char c = text_[pos_++];
      if (c == '[' || c == '(') ++depth;
      if (c == ']' || c == ')') --depth;
      if (c == '\'' || c == '"') {
        size_t end = text_.find(c, pos_);
        if (end == std::string_view::npos) error("unterminated string");
        pos_ = end + 1;
      }
    } while (depth > 0);
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n')) ++pos_;
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void expect(char c) {
    skip_space();
    if (peek() != c) error(fmt::format("expected '{}'", c));
    ++pos_;
  }
  [[noreturn]] void error(const std::string& what) const {
    fail(name_, fmt::format("malformed .npy header at offset {}: {} in \"{}\"", pos_, what, std::string(text_)));
  }

  std::string_view text_;
  const std::string& name_;
  size_t pos_ = 0;
};

// Maps a descr string to a dtype; RuntimeError for big-endian and unsupported types.
DType dtype_of_descr(const std::string& descr, std::optional<DType> expected, const std::string& name) {
  if (descr.size() < 2) fail(name, fmt::format("unsupported dtype descr '{}'", descr));
  char order = descr[0];
  std::string code = descr.substr(1);
  if (order == '>') {
    fail(name, fmt::format("big-endian data (descr '{}') is not supported; save it little-endian "
                           "(numpy: a.astype(a.dtype.newbyteorder('<')))",
                           descr));
  }
  if (order != '<' && order != '|' && order != '=') fail(name, fmt::format("unsupported dtype descr '{}'", descr));
  if (code == "f4") return DType::F32;
  if (code == "f2") return DType::F16;
  if (code == "i4") return DType::I32;
  if (code == "i8") return DType::I64;
  if (code == "b1") return DType::Bool;
  if (code == "u1") return DType::U8;
  if (code == "u2" || code == "V2") {
    if (expected == DType::BF16) return DType::BF16;
    fail(name, fmt::format("dtype descr '{}' is read only as bf16 bit patterns, and bf16 was not requested "
                           "(attnc has no uint16 type)",
                           descr));
  }
  fail(name, fmt::format("unsupported dtype descr '{}' (supported: '<f4', '<f2', '<i4', '<i8', '|b1', '|u1', "
                         "and '<u2' as bf16 on request)",
                         descr));
}

const char* descr_of_dtype(DType dtype) {
  switch (dtype) {
    case DType::F32: return "<f4";
    case DType::F16: return "<f2";
    case DType::BF16: return "<u2";  // raw bf16 bits; see Npy.h
    case DType::I32: return "<i4";
    case DType::I64: return "<i8";
    case DType::U8: return "|u1";
    case DType::Bool: return "|b1";
  }
  return "";
}

uint32_t read_le(const unsigned char* p, size_t bytes) {
  uint32_t value = 0;
  for (size_t i = 0; i < bytes; ++i) value |= static_cast<uint32_t>(p[i]) << (8 * i);
  return value;
}

// What a .npy header says about the data that follows it.
struct NpyLayout {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  bool fortran_order = false;
  size_t data_offset = 0;  // where the data starts: magic, version, header length and header
  size_t data_bytes = 0;   // what the shape needs
};

// The size of the prefix (magic, version and the header's length field) of a file whose first
// bytes are `start`, and the header length it declares.
std::pair<size_t, size_t> parse_prefix(std::string_view start, const std::string& name) {
  const auto* raw = reinterpret_cast<const unsigned char*>(start.data());
  if (start.size() < kMagicSize + 2 || std::memcmp(start.data(), kMagic, kMagicSize) != 0) {
    fail(name, "not a .npy file (the magic string \\x93NUMPY is missing)");
  }
  int major = raw[6];
  int minor = raw[7];
  size_t length_bytes = 0;
  if (major == 1 && minor == 0) {
    length_bytes = 2;
  } else if ((major == 2 || major == 3) && minor == 0) {
    length_bytes = 4;
  } else {
    fail(name, fmt::format("unsupported .npy format version {}.{} (supported: 1.0, 2.0, 3.0)", major, minor));
  }
  size_t prefix = kMagicSize + 2 + length_bytes;
  if (start.size() < prefix) fail(name, "truncated .npy file: the header length is cut off");
  return {prefix, read_le(raw + kMagicSize + 2, length_bytes)};
}

// Checks the header (`bytes` holds at least the prefix and the header) against a file of
// `file_size` bytes: the data must be exactly what the shape needs.
NpyLayout parse_layout(std::string_view bytes, uint64_t file_size, std::optional<DType> expected,
                       const std::string& name) {
  auto [prefix, header_length] = parse_prefix(bytes, name);
  if (bytes.size() - prefix < header_length) {
    fail(name, fmt::format("truncated .npy file: the header needs {} bytes, {} are present", header_length,
                           bytes.size() - prefix));
  }
  std::string_view header = bytes.substr(prefix, header_length);

  auto entries = HeaderParser(header, name).parse_dict();
  const HeaderValue* descr = nullptr;
  const HeaderValue* fortran = nullptr;
  const HeaderValue* shape_value = nullptr;
  for (const auto& [key, value] : entries) {
    if (key == "descr") descr = &value;
    if (key == "fortran_order") fortran = &value;
    if (key == "shape") shape_value = &value;
  }
  if (!descr || !fortran || !shape_value) {
    fail(name, "malformed .npy header: it needs the keys 'descr', 'fortran_order' and 'shape'");
  }
  if (descr->kind == HeaderValue::Kind::List) fail(name, "structured dtypes are not supported");
  if (descr->kind != HeaderValue::Kind::String) fail(name, "malformed .npy header: 'descr' is not a string");
  if (fortran->kind != HeaderValue::Kind::Bool) fail(name, "malformed .npy header: 'fortran_order' is not a bool");
  if (shape_value->kind != HeaderValue::Kind::Tuple) fail(name, "malformed .npy header: 'shape' is not a tuple");

  NpyLayout layout;
  layout.dtype = dtype_of_descr(descr->text, expected, name);
  if (expected && *expected != layout.dtype) {
    fail(name, fmt::format("expected a {} array, but the file holds {} (descr '{}')", dtype_name(*expected),
                           dtype_name(layout.dtype), descr->text));
  }
  layout.shape = shape_value->items;
  layout.fortran_order = fortran->flag;
  int64_t numel = 1;
  for (int64_t extent : layout.shape) {
    if (extent != 0 && numel > std::numeric_limits<int64_t>::max() / extent / 8) {
      fail(name, fmt::format("shape {} is too large", shape_to_string(layout.shape)));
    }
    numel *= extent;
  }
  layout.data_offset = prefix + header_length;
  layout.data_bytes = static_cast<size_t>(numel) * dtype_size(layout.dtype);
  uint64_t available = file_size - layout.data_offset;
  if (available < layout.data_bytes) {
    fail(name, fmt::format("truncated .npy file: shape {} of {} needs {} data bytes, {} are present",
                           shape_to_string(layout.shape), dtype_name(layout.dtype), layout.data_bytes, available));
  }
  if (available > layout.data_bytes) {
    fail(name, fmt::format("malformed .npy file: {} bytes follow the {} data bytes of shape {}",
                           available - layout.data_bytes, layout.data_bytes, shape_to_string(layout.shape)));
  }
  return layout;
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 6) value /= 1024, ++unit;
  return unit == 0 ? fmt::format("{} bytes", bytes) : fmt::format("{:.1f} {}", value, units[unit]);
}

// The tensor the layout describes, its data not yet filled in. Data that could not fit in this
// machine's memory is refused before trying, and a failed allocation (a memory limit) is reported
// with the file's name and size rather than as a bare std::bad_alloc.
Tensor allocate_for(const NpyLayout& layout, const std::string& name) {
  auto too_large = [&](const std::string& why) {
    return fmt::format("the array (shape {} of {}) needs {} ({} bytes) of memory, {}", shape_to_string(layout.shape),
                       dtype_name(layout.dtype), human_bytes(layout.data_bytes), layout.data_bytes, why);
  };
  long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0 &&
      layout.data_bytes / static_cast<uint64_t>(page_size) > static_cast<uint64_t>(pages)) {
    fail(name, too_large(fmt::format("more than this machine has ({})",
                                     human_bytes(static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size)))));
  }
  std::string problem;
  try {
    return Tensor::empty(layout.dtype, layout.shape);
  } catch (const std::bad_alloc&) {
    problem = "more than could be allocated";
  } catch (const RuntimeError& e) {
    problem = fmt::format("more than could be allocated ({})", e.what());
  }
  fail(name, too_large(problem));
}

// The tensor over data already read into `tensor`: bools normalised, Fortran order as strides.
Tensor finish(Tensor tensor, const NpyLayout& layout) {
  if (layout.dtype == DType::Bool) {
    // numpy writes 0/1, but a stray byte must not become a bool other than true/false downstream.
    auto* p = static_cast<uint8_t*>(tensor.data());
    for (size_t i = 0; i < layout.data_bytes; ++i) p[i] = p[i] != 0;
  }
  if (layout.fortran_order && layout.shape.size() > 1) {
    // Column-major: the first dimension varies fastest. Keep the data, describe it with strides.
    std::vector<int64_t> shape = layout.shape;
    std::vector<int64_t> strides(shape.size());
    int64_t stride = 1;
    for (size_t d = 0; d < shape.size(); ++d) {
      strides[d] = stride;
      stride *= shape[d] > 0 ? shape[d] : 1;
    }
    void* data = tensor.data();
    // Re-wrap the same storage with Fortran strides; the owning tensor keeps it alive.
    return Tensor::from_storage(std::shared_ptr<void>(std::make_shared<Tensor>(tensor), data), data, layout.dtype,
                                std::move(shape), std::move(strides));
  }
  return tensor;
}

// Reads exactly `size` bytes at `offset` of `fd` into `out`; false when the file ends first.
bool read_at(int fd, char* out, size_t size, uint64_t offset, const std::string& name) {
  size_t done = 0;
  while (done < size) {
    ssize_t n =
        ::pread(fd, out + done, std::min<size_t>(size - done, size_t{1} << 30), static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(name, fmt::format("read error: {}", std::strerror(errno)));
    if (n == 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

Tensor parse_npy(std::string_view bytes, std::optional<DType> expected, const std::string& name) {
  NpyLayout layout = parse_layout(bytes, bytes.size(), expected, name);
  Tensor tensor = allocate_for(layout, name);
  if (layout.data_bytes) std::memcpy(tensor.data(), bytes.data() + layout.data_offset, layout.data_bytes);
  return finish(std::move(tensor), layout);
}

Tensor read_npy(const std::string& path, std::optional<DType> expected) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, fmt::format("cannot open the file for reading: {}", std::strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) fail(path, fmt::format("cannot read the file: {}", std::strerror(errno)));
  if (S_ISDIR(info.st_mode)) fail(path, "is a directory, not a .npy file");
  const uint64_t file_size = static_cast<uint64_t>(info.st_size);

  // The header first (its length is in the prefix), then the data straight into the tensor: the
  // file is never held in memory twice, and its size is checked before anything is allocated.
  std::string start(std::min<uint64_t>(file_size, kMagicSize + 2 + 4), '\0');
  if (!read_at(fd, start.data(), start.size(), 0, path)) fail(path, "the file shrank while it was read");
  auto [prefix, header_length] = parse_prefix(start, path);
  std::string head(std::min<uint64_t>(file_size, prefix + header_length), '\0');
  if (!read_at(fd, head.data(), head.size(), 0, path)) fail(path, "the file shrank while it was read");
  NpyLayout layout = parse_layout(head, file_size, expected, path);
  Tensor tensor = allocate_for(layout, path);
  if (!read_at(fd, static_cast<char*>(tensor.data()), layout.data_bytes, layout.data_offset, path)) {
    fail(path, "the file shrank while it was read");
  }
  return finish(std::move(tensor), layout);
}

std::string serialize_npy(const Tensor& tensor) {
  if (!tensor.defined()) throw RuntimeError("cannot write an undefined tensor as .npy");
  if (tensor.device() != Device::Cpu) {
    throw RuntimeError(
        fmt::format("cannot write a {} tensor as .npy; copy it to the CPU first", device_name(tensor.device())));
  }
  std::string shape = "(";
  for (size_t d = 0; d < tensor.rank(); ++d) {
    shape += std::to_string(tensor.shape()[d]);
    shape += (tensor.rank() == 1 || d + 1 < tensor.rank()) ? "," : "";
    if (d + 1 < tensor.rank()) shape += " ";
  }
  shape += ")";
  std::string header =
      fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr_of_dtype(tensor.dtype()), shape);
  // Pad with spaces so the data starts at a multiple of 64 bytes, ending in '\n' as numpy does.
  size_t prefix = kMagicSize + 2 + 2;
  size_t total = prefix + header.size() + 1;
  size_t padded = (total + 63) / 64 * 64;
  header.append(padded - total, ' ');
  header += '\n';
  if (header.size() > 0xFFFF) throw RuntimeError("the .npy header is too long for format version 1.0");

  Tensor data = tensor.is_contiguous() ? tensor : tensor.contiguous_copy();
  size_t data_bytes = static_cast<size_t>(tensor.numel()) * dtype_size(tensor.dtype());
  std::string out;
  out.reserve(prefix + header.size() + data_bytes);
  out.append(kMagic, kMagicSize);
  out += static_cast<char>(1);
  out += static_cast<char>(0);
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  if (data_bytes) {
    // A contiguous view with size-1 dims of odd strides is still dense from data().
    out.append(static_cast<const char*>(data.data()), data_bytes);
  }
  return out;
}

void write_npy(const std::string& path, const Tensor& tensor) { write_file_atomically(path, serialize_npy(tensor)); }

}  // namespace attnc
