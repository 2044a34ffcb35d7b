// Host memory accounting by category, so a run can report where its bytes went
// (parameters, gradients, optimizer state, activations, workspace) and the peak of each.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace pptrain {

// Bytes per MiB and GiB, for every memory figure the project prints.
inline constexpr double kMiB = 1024.0 * 1024.0;
inline constexpr double kGiB = 1024.0 * kMiB;

// "9.10 GiB", or "28.3 MiB" under 1 GiB: a memory size in a message.
std::string memory_size(std::size_t bytes);

enum class MemCategory { Params, Grads, Optimizer, Activations, Workspace, Count };
std::string_view mem_category_name(MemCategory c);

class MemoryTracker {
 public:
  void add(MemCategory c, std::size_t bytes);
  void release(MemCategory c, std::size_t bytes);
  std::size_t current(MemCategory c) const { return current_[index(c)]; }
  std::size_t peak(MemCategory c) const { return peak_[index(c)]; }
  std::size_t peak_total() const { return peak_total_; }
  // Peaks from now on: what was allocated and freed before (a start-up measurement) no longer
  // counts.
  void reset_peaks();

 private:
  static std::size_t index(MemCategory c) { return static_cast<std::size_t>(c); }
  std::array<std::size_t, static_cast<std::size_t>(MemCategory::Count)> current_{}, peak_{};
  std::size_t current_total_ = 0, peak_total_ = 0;
};

// "params 3.2 MiB, grads 3.2 MiB, ..., peak total 20.1 MiB": for logs and benchmark tables.
std::string describe_memory_peaks(const MemoryTracker& tracker);

// A zero-initialised float array whose bytes are counted against one category.
class FloatBuffer {
 public:
  FloatBuffer() = default;
  FloatBuffer(MemoryTracker& tracker, MemCategory category, std::size_t count);
  ~FloatBuffer();
  FloatBuffer(FloatBuffer&& other) noexcept;
  FloatBuffer& operator=(FloatBuffer&& other) noexcept;
  FloatBuffer(const FloatBuffer&) = delete;
  FloatBuffer& operator=(const FloatBuffer&) = delete;

  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  std::size_t size() const { return data_.size(); }
  float& operator[](std::size_t i) { return data_[i]; }
  float operator[](std::size_t i) const { return data_[i]; }
  void zero();

 private:
  void release();
  MemoryTracker* tracker_ = nullptr;
  MemCategory category_ = MemCategory::Workspace;
  std::vector<float> data_;
};

}  // namespace pptrain
