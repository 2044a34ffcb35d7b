// The requests a transport has in flight, by the small integer handles Transport hands out
// (isend/irecv return one, wait takes it back). A handle is reused once taken back, so the
// table stays as large as the most requests ever in flight at once; a handle never given, or
// already taken, is an error rather than a stale entry.
#pragma once

#include <vector>

#include "comm/transport.h"
#include "core/error.h"

namespace pptrain {

template <typename T>
class RequestTable {
 public:
  Transport::Request add(T item) {
    if (!free_.empty()) {
      const Transport::Request handle = free_.back();
      free_.pop_back();
      items_[handle] = std::move(item);
      live_[handle] = 1;
      return handle;
    }
    items_.push_back(std::move(item));
    live_.push_back(1);
    return static_cast<Transport::Request>(items_.size() - 1);
  }

  T& at(Transport::Request handle) {
    PPT_CHECK(handle >= 0 && static_cast<std::size_t>(handle) < items_.size() && live_[handle],
              "wait on unknown request {}", handle);
    return items_[handle];
  }

  // Removes the request and returns it; its handle is given out again.
  T take(Transport::Request handle) {
    T item = std::move(at(handle));
    items_[handle] = T{};
    live_[handle] = 0;
    free_.push_back(handle);
    return item;
  }

  // Calls fn(item) for every request still in flight (for destructors).
  template <typename Fn>
  void for_each_live(Fn&& fn) {
    for (std::size_t i = 0; i < items_.size(); ++i) {
      if (live_[i]) fn(items_[i]);
    }
  }

 private:
  std::vector<T> items_;
  std::vector<char> live_;
  std::vector<Transport::Request> free_;
};

}  // namespace pptrain
