#include "comm/transport.h"

#include "core/error.h"

namespace pptrain {

Transport::Request SingleProcessTransport::isend(const float*, std::size_t, int peer, int tag) {
  PPT_THROW("a single-process run cannot send to rank {} (tag {})", peer, tag);
}

Transport::Request SingleProcessTransport::irecv(float*, std::size_t, int peer, int tag) {
  PPT_THROW("a single-process run cannot receive from rank {} (tag {})", peer, tag);
}

}  // namespace pptrain
