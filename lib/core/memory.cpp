#include "core/memory.h"

#include <fmt/format.h>

#include <algorithm>

namespace pptrain {

std::string memory_size(std::size_t bytes) {
  const double b = static_cast<double>(bytes);
  return b < kGiB ? fmt::format("{:.1f} MiB", b / kMiB) : fmt::format("{:.2f} GiB", b / kGiB);
}

std::string_view mem_category_name(MemCategory c) {
  switch (c) {
    case MemCategory::Params: return "params";
    case MemCategory::Grads: return "grads";
    case MemCategory::Optimizer: return "optimizer";
    case MemCategory::Activations: return "activations";
    case MemCategory::Workspace: return "workspace";
    case MemCategory::Count: break;
  }
  return "?";
}

std::string describe_memory_peaks(const MemoryTracker& tracker) {
  std::string out;
  for (int c = 0; c < static_cast<int>(MemCategory::Count); ++c) {
    const auto category = static_cast<MemCategory>(c);
    out += fmt::format("{} {:.1f} MiB, ", mem_category_name(category), tracker.peak(category) / kMiB);
  }
  return out + fmt::format("peak total {:.1f} MiB", tracker.peak_total() / kMiB);
}

void MemoryTracker::add(MemCategory c, std::size_t bytes) {
  current_[index(c)] += bytes;
  peak_[index(c)] = std::max(peak_[index(c)], current_[index(c)]);
  current_total_ += bytes;
  peak_total_ = std::max(peak_total_, current_total_);
}

void MemoryTracker::release(MemCategory c, std::size_t bytes) {
  current_[index(c)] -= bytes;
  current_total_ -= bytes;
}

void MemoryTracker::reset_peaks() {
  peak_ = current_;
  peak_total_ = current_total_;
}

FloatBuffer::FloatBuffer(MemoryTracker& tracker, MemCategory category, std::size_t count)
    : tracker_(&tracker), category_(category), data_(count, 0.0f) {
  tracker_->add(category_, count * sizeof(float));
}

FloatBuffer::~FloatBuffer() { release(); }

FloatBuffer::FloatBuffer(FloatBuffer&& other) noexcept
    : tracker_(other.tracker_), category_(other.category_), data_(std::move(other.data_)) {
  other.tracker_ = nullptr;
  other.data_.clear();
}

FloatBuffer& FloatBuffer::operator=(FloatBuffer&& other) noexcept {
  if (this != &other) {
    release();
    tracker_ = other.tracker_;
    category_ = other.category_;
    data_ = std::move(other.data_);
    other.tracker_ = nullptr;
    other.data_.clear();
  }
  return *this;
}

void FloatBuffer::zero() { std::fill(data_.begin(), data_.end(), 0.0f); }

void FloatBuffer::release() {
  if (tracker_ != nullptr) tracker_->release(category_, data_.size() * sizeof(float));
  tracker_ = nullptr;
}

}  // namespace pptrain
