#pragma once
// Inputs for the `attnc run` process tests: random q, k, v and masks written as .npy files into a
// scratch directory, the command-line arguments that name them, and arguments that bind every
// parameter of a mod of an example file.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "compiler/Module.h"
#include "runtime/core/Npy.h"
#include "runtime/core/Tensor.h"
#include "tests/support/TestTensors.h"
#include "tests/tools/AttncProcess.h"

namespace attnc_test {

// q (B, H, Sq, D), k and v (B, Hkv, Skv, D) uniform in [-1, 1) from `seed`, written as q.npy, k.npy
// and v.npy in `dir`.
struct RunInputs {
  attnc::Tensor q, k, v;
  std::string args;  // " --q DIR/q.npy --k DIR/k.npy --v DIR/v.npy"

  RunInputs(const fs::path& dir, int64_t batch, int64_t heads, int64_t kv_heads, int64_t q_len, int64_t kv_len,
            int64_t head_dim, uint32_t seed, attnc::DType dtype = attnc::DType::F32) {
    q = attnc::test::uniform_tensor(seed, dtype, {batch, heads, q_len, head_dim});
    k = attnc::test::uniform_tensor(seed + 1, dtype, {batch, kv_heads, kv_len, head_dim});
    v = attnc::test::uniform_tensor(seed + 2, dtype, {batch, kv_heads, kv_len, head_dim});
    for (const auto& [name, t] : {std::pair{"q", &q}, std::pair{"k", &k}, std::pair{"v", &v}}) {
      attnc::write_npy((dir / (std::string(name) + ".npy")).string(), *t);
      args += std::string(" --") + name + " " + quoted(dir / (std::string(name) + ".npy"));
    }
  }
};

// A bool mask of `shape` from `seed` keeping about 3 of 4 elements, written to dir/NAME.
inline attnc::Tensor write_mask(const fs::path& path, std::vector<int64_t> shape, uint32_t seed,
                                attnc::DType dtype = attnc::DType::Bool) {
  const attnc::Tensor values = attnc::test::uniform_tensor(seed, attnc::DType::F32, shape, 0.0f, 1.0f);
  attnc::Tensor mask = attnc::Tensor::empty(dtype, shape);
  const std::vector<float> u = values.to_float_vector();
  auto* bytes = static_cast<unsigned char*>(mask.data());
  for (size_t i = 0; i < u.size(); ++i) bytes[i] = u[i] < 0.75f ? 1 : 0;
  attnc::write_npy(path.string(), mask);
  return mask;
}

// `--arg` options binding every parameter of `def` for inputs of `batch` x `heads` x `length`
// positions: ints 16, floats 20, bools true; tensors written into `dir`, their named extents B
// and BB the batch, H, NH and BH the heads, any other the length; int tensors hold runs of 25
// equal values (documents), float ones values in [0, 0.5) (slopes, biases).
inline std::string bind_every_parameter(const attnc::ir::ModDef& def, const fs::path& dir, int64_t batch, int64_t heads,
                                        int64_t length) {
  std::string args;
  uint32_t seed = 100;
  for (const attnc::ir::ParamDecl& param : def.params) {
    if (!param.is_tensor()) {
      const char* value = param.elem == attnc::ir::Type::Int     ? "16"
                          : param.elem == attnc::ir::Type::Float ? "20"
                                                                 : "true";
      args += " --arg " + param.name + "=" + value;
      continue;
    }
    std::vector<int64_t> shape;
    for (const attnc::ir::TensorDim& dim : param.dims) {
      if (dim.size >= 0)
        shape.push_back(dim.size);
      else if (dim.name == "B" || dim.name == "BB")
        shape.push_back(batch);
      else if (dim.name == "H" || dim.name == "NH" || dim.name == "BH")
        shape.push_back(heads);
      else
        shape.push_back(length);
    }
    attnc::Tensor t;
    if (param.elem == attnc::ir::Type::Int) {
      t = attnc::Tensor::empty(attnc::DType::I32, shape);
      for (int64_t i = 0; i < t.numel(); ++i)
        static_cast<int32_t*>(t.data())[i] = static_cast<int32_t>(i % length / 25);
    } else {
      t = attnc::test::uniform_tensor(seed++, attnc::DType::F32, shape, 0.0f, 0.5f);
    }
    const fs::path file = dir / (def.name + "-" + param.name + ".npy");
    attnc::write_npy(file.string(), t);
    args += " --arg " + param.name + "=" + quoted(file);
  }
  return args;
}

}  // namespace attnc_test
