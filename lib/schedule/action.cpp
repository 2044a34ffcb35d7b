#include "schedule/action.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <utility>

#include "core/error.h"

namespace pptrain::schedule {
namespace {

constexpr std::array<std::pair<ActionKind, std::string_view>, 8> kCodes = {{
    {ActionKind::Forward, "F"},
    {ActionKind::Backward, "B"},
    {ActionKind::BackwardInput, "I"},
    {ActionKind::BackwardWeight, "W"},
    {ActionKind::SendF, "SEND_F"},
    {ActionKind::RecvF, "RECV_F"},
    {ActionKind::SendB, "SEND_B"},
    {ActionKind::RecvB, "RECV_B"},
}};

std::string bad_action(std::string_view token, std::string_view why) {
  return fmt::format(
      "bad action '{}': {}; expected <stage><kind><micro-batch> like 2F5 or "
      "1SEND_F3, kind one of F B I W SEND_F RECV_F SEND_B RECV_B",
      token, why);
}

// Parses the decimal number at the front of `text`, advancing it. -1 when there is none,
// -2 when it does not fit an int.
int take_number(std::string_view& text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  if (digits == 0) return -1;
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, value);
  if (ec != std::errc() || end != text.data() + digits) return -2;
  text.remove_prefix(digits);
  return value;
}

}  // namespace

std::string_view kind_code(ActionKind kind) {
  for (const auto& [k, code] : kCodes) {
    if (k == kind) return code;
  }
  PPT_THROW("unknown ActionKind {}", static_cast<int>(kind));
}

bool is_compute(ActionKind kind) {
  return kind == ActionKind::Forward || kind == ActionKind::Backward ||
         kind == ActionKind::BackwardInput || kind == ActionKind::BackwardWeight;
}
bool is_comm(ActionKind kind) { return !is_compute(kind); }
bool is_send(ActionKind kind) { return kind == ActionKind::SendF || kind == ActionKind::SendB; }
bool is_recv(ActionKind kind) { return kind == ActionKind::RecvF || kind == ActionKind::RecvB; }
bool makes_input_grad(ActionKind kind) {
  return kind == ActionKind::Backward || kind == ActionKind::BackwardInput;
}

std::string to_string(const Action& action) {
  return fmt::format("{}{}{}", action.stage, kind_code(action.kind), action.micro_batch);
}

bool try_parse_action(std::string_view token, Action& out, std::string& error) {
  auto fail = [&](std::string_view why) {
    error = bad_action(token, why);
    return false;
  };
  std::string_view rest = token;
  Action action;
  action.stage = take_number(rest);
  if (action.stage == -2) return fail("stage number too large");
  if (action.stage < 0) return fail("no stage number at the start");
  std::size_t code_len = 0;
  while (code_len < rest.size() &&
         (std::isupper(static_cast<unsigned char>(rest[code_len])) || rest[code_len] == '_')) {
    ++code_len;
  }
  const std::string_view code = rest.substr(0, code_len);
  rest.remove_prefix(code_len);
  const auto known = std::find_if(kCodes.begin(), kCodes.end(),
                                  [&](const auto& entry) { return entry.second == code; });
  if (known == kCodes.end()) {
    return fail(code.empty() ? std::string("no kind after the stage")
                             : fmt::format("unknown kind '{}'", code));
  }
  action.kind = known->first;
  action.micro_batch = take_number(rest);
  if (action.micro_batch == -2) return fail("micro-batch number too large");
  if (action.micro_batch < 0) return fail("no micro-batch number after the kind");
  if (!rest.empty()) return fail(fmt::format("unexpected '{}' at the end", rest));
  out = action;
  return true;
}

Action parse_action(std::string_view token) {
  Action action;
  std::string error;
  if (!try_parse_action(token, action, error)) PPT_THROW("{}", error);
  return action;
}

Action matching_comm(const Action& comm) {
  switch (comm.kind) {
    case ActionKind::SendF: return {comm.stage + 1, ActionKind::RecvF, comm.micro_batch};
    case ActionKind::RecvF: return {comm.stage - 1, ActionKind::SendF, comm.micro_batch};
    case ActionKind::SendB: return {comm.stage - 1, ActionKind::RecvB, comm.micro_batch};
    case ActionKind::RecvB: return {comm.stage + 1, ActionKind::SendB, comm.micro_batch};
    default: PPT_THROW("matching_comm: {} is not a communication action", to_string(comm));
  }
}

}  // namespace pptrain::schedule
