// Token shard reader: any file either opens, and then every token the header announces can
// be read inside the mapping and lies in the vocabulary, or the open throws pptrain::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "data/token_shard.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pptrain;
  static const fuzz::ScratchDir scratch;
  const std::string path = scratch.write("shard.bin", data, size);
  // GPT-2's vocabulary, and the byte-level one of `pptrain prepare` (rejects most tokens).
  for (int vocab_size : {50257, 256}) {
    fuzz::returns_or_throws_error([&] {
      TokenShard shard = TokenShard::open(path, vocab_size);
      if (shard.size() < 0 || 1024 + 2 * static_cast<std::size_t>(shard.size()) != size) {
        fuzz::fail("opened a shard whose token count does not match the file's size");
      }
      for (std::uint16_t token : shard.tokens()) {
        if (token >= vocab_size) fuzz::fail("opened a shard with a token outside the vocabulary");
      }
    });
  }
  return 0;
}
