#include "runtime/core/Npy.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "runtime/core/RuntimeError.h"

using namespace attnc;

namespace {

// A .npy file built by hand, independently of serialize_npy.
std::string make_npy(const std::string& header, const std::string& data, int major = 1) {
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  size_t length_bytes = major == 1 ? 2 : 4;
  std::string padded = header;
  while ((out.size() + length_bytes + padded.size() + 1) % 64 != 0) padded += ' ';
  padded += '\n';
  for (size_t i = 0; i < length_bytes; ++i) out += static_cast<char>((padded.size() >> (8 * i)) & 0xFF);
  return out + padded + data;
}

template <typename T>
std::string bytes_of(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("attnc_npy_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

}  // namespace

TEST_CASE("every supported dtype survives a write and read round trip", "[runtime][npy]") {
  auto [dtype, descr] = GENERATE(table<DType, std::string>({
      {DType::F32, "<f4"},
      {DType::F16, "<f2"},
      {DType::BF16, "<u2"},
      {DType::I32, "<i4"},
      {DType::I64, "<i8"},
      {DType::U8, "|u1"},
      {DType::Bool, "|b1"},
  }));
  CAPTURE(dtype_name(dtype));
  Tensor t = Tensor::empty(dtype, {2, 3});
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      if (dtype_is_float(dtype)) {
        t.set_float({i, j}, 0.5f * static_cast<float>(i * 3 + j) - 1.0f);
      } else {
        t.set_int({i, j}, dtype == DType::Bool ? (i + j) % 2 : i * 3 + j + 1);
      }
    }
  }
  std::string bytes = serialize_npy(t);
  CHECK(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  size_t header_length = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
  CHECK((10 + header_length) % 64 == 0);
  std::string header = bytes.substr(10, header_length);
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (2, 3), }";
  CHECK(header.substr(0, dict.size()) == dict);
  CHECK(header.back() == '\n');
  CHECK(header.find_first_not_of(' ', dict.size()) == header.size() - 1);
  CHECK(bytes.size() == 10 + header_length + 6 * dtype_size(dtype));

  std::string path = temp_path("roundtrip.npy");
  write_npy(path, t);
  Tensor back = read_npy(path, dtype == DType::BF16 ? std::optional<DType>(DType::BF16) : std::nullopt);
  std::filesystem::remove(path);
  CHECK(back.dtype() == dtype);
  CHECK(back.shape() == t.shape());
  CHECK(back.is_contiguous());
  CHECK(std::memcmp(back.data(), t.data(), 6 * dtype_size(dtype)) == 0);
}

TEST_CASE("shapes of rank 0 and 1 and empty arrays use Python tuple syntax", "[runtime][npy]") {
  auto [shape, text] = GENERATE(table<std::vector<int64_t>, std::string>({
      {std::vector<int64_t>{}, "()"},
      {std::vector<int64_t>{5}, "(5,)"},
      {std::vector<int64_t>{0, 3}, "(0, 3)"},
      {std::vector<int64_t>{1, 2, 3, 4}, "(1, 2, 3, 4)"},
  }));
  CAPTURE(text);
  Tensor t = Tensor::zeros(DType::F32, shape);
  std::string bytes = serialize_npy(t);
  CHECK(bytes.find("'shape': " + text + ", }") != std::string::npos);
  Tensor back = parse_npy(bytes);
  CHECK(back.shape() == shape);
  CHECK(back.numel() == t.numel());
}

TEST_CASE("a non-contiguous tensor is written in C order", "[runtime][npy]") {
  std::vector<float> values{1, 2, 3, 4, 5, 6};
  Tensor transposed = Tensor::from_data(values.data(), DType::F32, {3, 2}, {1, 3});  // [[1,4],[2,5],[3,6]]
  Tensor back = parse_npy(serialize_npy(transposed));
  CHECK(back.shape() == std::vector<int64_t>{3, 2});
  CHECK(back.to_float_vector() == std::vector<float>{1, 4, 2, 5, 3, 6});
}

TEST_CASE("Fortran-order files become column-major strides over the same data", "[runtime][npy]") {
  // Element (i, j) = 10 i + j, stored with i varying fastest.
  std::vector<int32_t> column_major{0, 10, 1, 11, 2, 12};
  Tensor t = parse_npy(make_npy("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }", bytes_of(column_major)));
  CHECK(t.shape() == std::vector<int64_t>{2, 3});
  CHECK(t.strides() == std::vector<int64_t>{1, 2});
  CHECK_FALSE(t.is_contiguous());
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 3; ++j) CHECK(t.get_int({i, j}) == 10 * i + j);
  }
  // Writing it back gives C order.
  Tensor again = parse_npy(serialize_npy(t));
  CHECK(again.is_contiguous());
  CHECK(again.to_float_vector() == std::vector<float>{0, 1, 2, 10, 11, 12});
}

TEST_CASE("format version 2.0 and numpy's header spelling variants are read", "[runtime][npy]") {
  std::vector<float> values{1.5f, -2.0f};
  SECTION("version 2.0 with a 4-byte header length") {
    Tensor t = parse_npy(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", bytes_of(values), 2));
    CHECK(t.to_float_vector() == values);
  }
  SECTION("keys in another order, double quotes, no trailing comma") {
    Tensor t =
        parse_npy(make_npy("{\"shape\": (1, 2), \"fortran_order\": False, \"descr\": \"<f4\"}", bytes_of(values)));
    CHECK(t.shape() == std::vector<int64_t>{1, 2});
    CHECK(t.get_float({0, 1}) == -2.0f);
  }
  SECTION("native byte order and Python 2 longs") {
    Tensor t = parse_npy(make_npy("{'descr': '=f4', 'fortran_order': False, 'shape': (2L,), }", bytes_of(values)));
    CHECK(t.numel() == 2);
  }
}

TEST_CASE("bf16 is read from '<u2' or '<V2' only when requested", "[runtime][npy]") {
  std::vector<uint16_t> bits{0x3F80, 0xC000};  // 1.0, -2.0
  std::string u2 = make_npy("{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }", bytes_of(bits));
  std::string v2 = make_npy("{'descr': '|V2', 'fortran_order': False, 'shape': (2,), }", bytes_of(bits));
  CHECK_THROWS_WITH(parse_npy(u2), Catch::Contains("bf16 was not requested"));
  CHECK_THROWS_WITH(parse_npy(u2, DType::F16), Catch::Contains("bf16 was not requested"));
  for (const std::string& file : {u2, v2}) {
    Tensor t = parse_npy(file, DType::BF16);
    CHECK(t.dtype() == DType::BF16);
    CHECK(t.to_float_vector() == std::vector<float>{1.0f, -2.0f});
  }
}

TEST_CASE("a requested dtype must match the file's", "[runtime][npy]") {
  std::string f4 = serialize_npy(Tensor::zeros(DType::F32, {2}));
  CHECK(parse_npy(f4, DType::F32).dtype() == DType::F32);
  CHECK_THROWS_WITH(parse_npy(f4, DType::F16), Catch::Contains("expected a fp16 array") && Catch::Contains("fp32"));
}

TEST_CASE("malformed, truncated and unsupported files are clear RuntimeErrors", "[runtime][npy]") {
  std::vector<float> two{1.0f, 2.0f};
  std::string good = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", bytes_of(two));
  REQUIRE(parse_npy(good, std::nullopt, "good.npy").numel() == 2);
  auto [name, bytes, message] = GENERATE_COPY(table<std::string, std::string, std::string>({
      {"empty file", "", "magic"},
      {"bad magic", std::string("\x93NUMPZ\x01\x00", 8) + good.substr(8), "magic"},
      {"unknown version", std::string("\x93NUMPY\x04\x00", 8) + good.substr(8), "version 4.0"},
      {"header length cut off", good.substr(0, 9), "header length"},
      {"header cut off", good.substr(0, 40), "header needs"},
      {"data cut off", good.substr(0, good.size() - 1), "needs 8 data bytes, 7"},
      {"trailing data", good + "xyz", "3 bytes follow"},
      {"big-endian", make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", bytes_of(two)),
       "big-endian"},
      {"float64", make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", bytes_of(two)),
       "unsupported dtype descr '<f8'"},
      {"structured dtype",
       make_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", bytes_of(two)), "structured"},
      {"missing shape", make_npy("{'descr': '<f4', 'fortran_order': False, }", bytes_of(two)), "'shape'"},
      {"shape not a tuple", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': 2, }", bytes_of(two)),
       "not a tuple"},
      {"negative extent", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", bytes_of(two)),
       "malformed .npy header"},
      {"not a dict", make_npy("hello", bytes_of(two)), "malformed .npy header"},
      {"unterminated string", make_npy("{'descr: '<f4'", bytes_of(two)), "malformed .npy header"},
      {"huge shape", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", ""),
       "too large"},
  }));
  CAPTURE(name);
  CHECK_THROWS_AS(parse_npy(bytes, std::nullopt, "bad.npy"), RuntimeError);
  CHECK_THROWS_WITH(parse_npy(bytes, std::nullopt, "bad.npy"),
                    Catch::StartsWith("bad.npy: ") && Catch::Contains(message));
}

TEST_CASE("unreadable files and device tensors are refused", "[runtime][npy]") {
  CHECK_THROWS_WITH(read_npy("/nonexistent/dir/x.npy"),
                    Catch::Contains("/nonexistent/dir/x.npy") && Catch::Contains("cannot open"));
  CHECK_THROWS_AS(write_npy("/nonexistent/dir/x.npy", Tensor::zeros(DType::F32, {1})), RuntimeError);
  float x[2] = {};
  CHECK_THROWS_WITH(serialize_npy(Tensor::from_data(x, DType::F32, {2}, {}, Device::Cuda)), Catch::Contains("cuda"));
  CHECK_THROWS_AS(serialize_npy(Tensor()), RuntimeError);
}

TEST_CASE("an array larger than this machine's memory is refused by name and size before allocating",
          "[runtime][npy]") {
  // A sparse file whose header claims 2^40 floats (4 TiB) and whose size matches: nothing is wrong
  // with the file, it just cannot be held in memory. Reading it must say so instead of ending in
  // std::bad_alloc (or trying to read 4 TiB of zeros).
  std::string path = temp_path("huge.npy");
  std::string header = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", "");
  std::ofstream(path, std::ios::binary) << header;
  const uint64_t data_bytes = uint64_t{1} << 42;
  if (::truncate(path.c_str(), static_cast<off_t>(header.size() + data_bytes)) != 0) {
    WARN("this file system cannot hold a sparse 4 TiB file; the huge-array check was not tested");
    std::filesystem::remove(path);
    return;
  }
  CHECK_THROWS_AS(read_npy(path), RuntimeError);
  CHECK_THROWS_WITH(read_npy(path), Catch::StartsWith(path + ": ") && Catch::Contains("4.0 TiB") &&
                                        Catch::Contains(std::to_string(data_bytes) + " bytes") &&
                                        Catch::Contains("more than this machine has"));
  std::filesystem::remove(path);
}

TEST_CASE("read_npy refuses a directory by name", "[runtime][npy]") {
  std::string dir = temp_path("a-directory.npy");
  std::filesystem::create_directories(dir);
  CHECK_THROWS_WITH(read_npy(dir), Catch::StartsWith(dir + ": ") && Catch::Contains("is a directory"));
  std::filesystem::remove(dir);
}

TEST_CASE("write_npy replaces a file whole and leaves nothing behind when it cannot write", "[runtime][npy]") {
  std::string path = temp_path("atomic.npy");
  write_npy(path, Tensor::zeros(DType::F32, {2}));
  write_npy(path, Tensor::zeros(DType::F32, {3}));
  CHECK(read_npy(path).numel() == 3);
  std::vector<std::string> leftovers;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::temp_directory_path())) {
    std::string name = entry.path().filename().string();
    if (name.find("atomic.npy") != std::string::npos && entry.path() != path) leftovers.push_back(name);
  }
  CHECK(leftovers.empty());
  std::filesystem::remove(path);
  std::string dir = temp_path("a-directory-to-write");
  std::filesystem::create_directories(dir);
  CHECK_THROWS_WITH(write_npy(dir, Tensor::zeros(DType::F32, {1})),
                    Catch::Contains(dir) && Catch::Contains("directory"));
  CHECK(std::filesystem::is_directory(dir));
  std::filesystem::remove(dir);
}
