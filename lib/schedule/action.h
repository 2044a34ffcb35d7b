// The schedule IR's unit (DESIGN.md section 4): one action of one rank, (stage, kind,
// micro-batch), written like PyTorch's pipelining IR: `2F5` is the forward of micro-batch 5
// on stage 2, `1SEND_F3` sends stage 1's output of micro-batch 3 to stage 2, `2RECV_F3`
// receives it on stage 2.
//
// Communication actions carry the stage that executes them, never the peer:
//   SEND_F(s, mb)  on stage s   -> stage s+1, after F(s, mb)     matches RECV_F(s+1, mb)
//   RECV_F(s, mb)  on stage s  <-  stage s-1, before F(s, mb)    matches SEND_F(s-1, mb)
//   SEND_B(s, mb)  on stage s   -> stage s-1, after B/I(s, mb)   matches RECV_B(s-1, mb)
//   RECV_B(s, mb)  on stage s  <-  stage s+1, before B/I(s, mb)  matches SEND_B(s+1, mb)
#pragma once

#include <string>
#include <string_view>

namespace pptrain::schedule {

enum class ActionKind {
  Forward,         // F: stage forward of one micro-batch
  Backward,        // B: full backward (input and weight gradients)
  BackwardInput,   // I: input-gradient half of B (zero-bubble schedules)
  BackwardWeight,  // W: weight-gradient half of B; needs the I of the same (stage, mb)
  SendF,           // SEND_F: activation to the next stage
  RecvF,           // RECV_F: activation from the previous stage
  SendB,           // SEND_B: input gradient to the previous stage
  RecvB,           // RECV_B: output gradient from the next stage
};

// Text code of a kind: F, B, I, W, SEND_F, RECV_F, SEND_B, RECV_B.
std::string_view kind_code(ActionKind kind);

bool is_compute(ActionKind kind);  // F, B, I, W
bool is_comm(ActionKind kind);     // SEND_*, RECV_*
bool is_send(ActionKind kind);
bool is_recv(ActionKind kind);
// B or I: the action that produces the gradient of the stage input (sent backward).
bool makes_input_grad(ActionKind kind);

struct Action {
  int stage = 0;
  ActionKind kind = ActionKind::Forward;
  int micro_batch = 0;

  friend bool operator==(const Action&, const Action&) = default;
};

// `<stage><code><micro-batch>`, e.g. "2F5", "1SEND_F3".
std::string to_string(const Action& action);

// Inverse of to_string. Throws pptrain::Error naming the token and the expected form.
Action parse_action(std::string_view token);
// The same without throwing: false and the message parse_action would throw.
bool try_parse_action(std::string_view token, Action& out, std::string& error);

// The other end of a comm action: SEND_F(s, mb) <-> RECV_F(s+1, mb) and
// SEND_B(s, mb) <-> RECV_B(s-1, mb). Throws for a compute action.
Action matching_comm(const Action& comm);

}  // namespace pptrain::schedule
