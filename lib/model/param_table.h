// One table (name, shape, offset) drives allocation, initialisation, the optimizer and,
// later, checkpoint I/O: a stage's parameters live in one flat fp32 array in table order,
// and its gradients in a second array with the same layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/gpt2_shape.h"

namespace pptrain {

struct ParamEntry {
  ParamSpec spec;
  std::size_t offset = 0;  // in floats, into the stage's flat array
};

class ParamTable {
 public:
  // Adds a tensor; a name already present (the tied wte) is kept once.
  void add(const ParamSpec& spec);
  bool contains(const std::string& name) const;
  const ParamEntry& find(const std::string& name) const;
  const std::vector<ParamEntry>& entries() const { return entries_; }
  std::size_t total_floats() const { return total_; }

 private:
  std::vector<ParamEntry> entries_;
  std::size_t total_ = 0;
};

// Fills one tensor from its spec. The values are a pure function of (seed, name): the
// same on every stage and layout, however many tensors were drawn before (DESIGN.md 6a).
void init_parameter(float* dst, const ParamSpec& spec, std::uint64_t seed);

}  // namespace pptrain
