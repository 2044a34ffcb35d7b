// YAML text -> Config: walks the document against the key table (config_fields.h),
// applies --set overrides, converts each value with its own type check, then runs
// check_config (config_checks.cpp). Every error is one line that starts with where the
// value came from, so the user never has to guess which file or flag is at fault.
#include "config/config_loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

#include "config/config_fields.h"
#include "core/error.h"

namespace pptrain {
namespace {

// One key the user gave: its YAML value and where it came from ("file:line:col", 1-based,
// or "--set a.b=v"). Values of a file carry their own marks, so list elements can be
// located too; override values cannot, so they all report the --set text.
struct GivenValue {
  YAML::Node value;
  std::string origin;
  bool from_file = false;
};

std::string mark_text(const std::string& source, const YAML::Mark& mark) {
  if (mark.is_null()) return source;
  return fmt::format("{}:{}:{}", source, mark.line + 1, mark.column + 1);
}

// A user's text inside a one-line message: newlines escaped, long values cut.
std::string shown(std::string text) {
  std::string out;
  for (char ch : text) out += ch == '\n' ? std::string("\\n") : std::string(1, ch);
  return out.size() > 60 ? out.substr(0, 57) + "..." : out;
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return fmt::format("'{}'", shown(node.Scalar()));
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "nothing";
  }
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                  std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// "unknown key 'training.lrr' (did you mean 'training.lr'?)". A suggestion is offered
// only when it is close (typos, seq_length for seq_len); otherwise the valid names are
// listed, since a wild guess misleads more than a list.
std::string unknown_key(const std::string& prefix, const std::string& name,
                        const std::vector<std::string>& valid) {
  std::string best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (const std::string& candidate : valid) {
    std::size_t d = edit_distance(name, candidate);
    if (d < best_distance) best_distance = d, best = candidate;
  }
  std::size_t close = name.size() < 4 ? 1 : std::max<std::size_t>(2, name.size() / 3);
  if (best_distance <= close) {
    return fmt::format("unknown key '{}{}' (did you mean '{}{}'?)", prefix, name, prefix, best);
  }
  if (prefix.empty()) {
    return fmt::format("unknown key '{}' (valid sections: {})", name, fmt::join(valid, ", "));
  }
  return fmt::format("unknown key '{}{}' (valid keys in {}: {})", prefix, name,
                     prefix.substr(0, prefix.size() - 1), fmt::join(valid, ", "));
}

// The key table reshaped for lookups: section -> its key names, in YAML order.
struct Schema {
  std::vector<std::string> sections;
  std::map<std::string, std::vector<std::string>> names;

  explicit Schema(Config& config) {
    for (const ConfigField& f : config_fields(config)) {
      if (names.find(f.section) == names.end()) sections.push_back(f.section);
      names[f.section].push_back(f.name);
    }
  }
  bool has_section(const std::string& s) const { return names.count(s) > 0; }
  bool has_key(const std::string& s, const std::string& n) const {
    const auto& v = names.at(s);
    return std::find(v.begin(), v.end(), n) != v.end();
  }
  // A top-level name that is not a section; "lr:" written at the top is a common slip.
  std::string unknown_section(const std::string& name) const {
    for (const std::string& s : sections) {
      if (has_key(s, name)) {
        return fmt::format("unknown key '{}' (did you mean '{}.{}'? keys go under their section)",
                           name, s, name);
      }
    }
    return unknown_key("", name, sections);
  }
};

// Collects "section.key" -> value from the document, rejecting unknown and duplicate keys
// (yaml-cpp keeps both copies of a duplicate; silently taking one hides a mistake).
void collect_file_keys(const YAML::Node& root, const std::string& source, const Schema& schema,
                       std::map<std::string, GivenValue>& given) {
  if (root.IsNull()) return;  // an empty file: everything at its default
  if (!root.IsMap()) {
    PPT_THROW("{}: expected a map of sections ({}), got {}", mark_text(source, root.Mark()),
              fmt::join(schema.sections, ", "), describe(root));
  }
  std::map<std::string, YAML::Mark> seen;
  auto check_key = [&](const YAML::Node& key_node, const std::string& full_name) {
    std::string at = mark_text(source, key_node.Mark());
    if (!key_node.IsScalar()) PPT_THROW("{}: expected a key name, got {}", at, describe(key_node));
    auto [it, fresh] = seen.emplace(full_name, key_node.Mark());
    if (!fresh) {
      PPT_THROW("{}: {}: duplicate key (first given at line {})", at, full_name,
                it->second.line + 1);
    }
  };
  for (const auto& section_entry : root) {
    const YAML::Node& section_key = section_entry.first;
    const YAML::Node& section_value = section_entry.second;
    check_key(section_key, section_key.Scalar());
    const std::string section = section_key.Scalar();
    std::string at = mark_text(source, section_key.Mark());
    if (!schema.has_section(section)) {
      PPT_THROW("{}: {}", at, schema.unknown_section(section));
    }
    if (section_value.IsNull()) continue;  // "model:" with every key commented out
    if (!section_value.IsMap()) {
      PPT_THROW("{}: {}: expected a map of keys, got {}",
                mark_text(source, section_value.Mark()), section, describe(section_value));
    }
    for (const auto& entry : section_value) {
      const std::string full = section + "." + entry.first.Scalar();
      check_key(entry.first, full);
      const std::string name = entry.first.Scalar();
      if (!schema.has_key(section, name)) {
        PPT_THROW("{}: {}", mark_text(source, entry.first.Mark()),
                  unknown_key(section + ".", name, schema.names.at(section)));
      }
      // An empty value ("lr:") is marked where the next token starts; point at its key.
      bool empty = entry.second.IsNull() || entry.second.Mark().is_null();
      YAML::Mark mark = empty ? entry.first.Mark() : entry.second.Mark();
      given[full] = GivenValue{entry.second, mark_text(source, mark), true};
    }
  }
}

void apply_override(const std::string& text, const Schema& schema, Config& config,
                    std::map<std::string, GivenValue>& given) {
  const std::string origin = "--set " + text;
  std::size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    PPT_THROW("{}: expected <section>.<key>=<value>, e.g. training.lr=3e-4", origin);
  }
  std::string key = text.substr(0, eq);
  std::string value_text = text.substr(eq + 1);
  std::size_t dot = key.find('.');
  std::string section = key.substr(0, dot);
  if (!schema.has_section(section)) {
    PPT_THROW("{}: {}", origin, schema.unknown_section(section));
  }
  if (dot == std::string::npos) {
    PPT_THROW("{}: '{}' is a section; set one key, e.g. {}.{}=<value>", origin, section, section,
              schema.names.at(section).front());
  }
  std::string name = key.substr(dot + 1);
  if (!schema.has_key(section, name)) {
    PPT_THROW("{}: {}", origin, unknown_key(section + ".", name, schema.names.at(section)));
  }
  YAML::Node value;
  try {
    value = YAML::Load(value_text);
  } catch (const YAML::Exception& e) {
    // A string such as "*.bin" is not valid YAML (an alias) but is what the user meant.
    bool is_string = false;
    for (const ConfigField& f : config_fields(config)) {
      if (f.key() == key) is_string = std::holds_alternative<std::string*>(f.ref);
    }
    if (!is_string) PPT_THROW("{}: {}: invalid YAML value: {}", origin, key, e.msg);
    value = YAML::Node(value_text);
  }
  given[key] = GivenValue{value, origin, false};
}

std::optional<long long> parse_integer(std::string text) {
  if (!text.empty() && text[0] == '+') text.erase(0, 1);
  long long v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_number(std::string text) {
  if (!text.empty() && text[0] == '+') text.erase(0, 1);
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

// Converts one value into its field. `at` is the message prefix "origin: key"; list
// elements from a file get their own line:col.
class Converter {
 public:
  Converter(const std::string& source, const GivenValue& given, const std::string& key)
      : source_(source), given_(given), key_(key) {}

  void operator()(int* out) const { *out = integer(given_.value, given_.origin, key_); }
  void operator()(double* out) const {
    const YAML::Node& n = given_.value;
    std::optional<double> v = n.IsScalar() ? parse_number(n.Scalar()) : std::nullopt;
    if (!v) PPT_THROW("{}: {}: expected a number, got {}", given_.origin, key_, describe(n));
    if (!std::isfinite(*v)) {
      PPT_THROW("{}: {}: expected a finite number, got {}", given_.origin, key_, describe(n));
    }
    *out = *v;
  }
  void operator()(bool* out) const {
    const YAML::Node& n = given_.value;
    if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "false")) {
      *out = n.Scalar() == "true";
      return;
    }
    PPT_THROW("{}: {}: expected true or false, got {}", given_.origin, key_, describe(n));
  }
  void operator()(std::string* out) const {
    const YAML::Node& n = given_.value;
    if (n.IsNull()) {
      out->clear();  // "val:" means no value, as "" does
    } else if (n.IsScalar()) {
      *out = n.Scalar();
    } else {
      PPT_THROW("{}: {}: expected a string, got {}", given_.origin, key_, describe(n));
    }
  }
  void operator()(std::uint64_t* out) const {
    const YAML::Node& n = given_.value;
    std::string text = n.IsScalar() ? n.Scalar() : "";
    if (!text.empty() && text[0] == '+') text.erase(0, 1);
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
      PPT_THROW("{}: {}: expected a non-negative integer, got {}", given_.origin, key_,
                describe(n));
    }
    *out = v;
  }
  void operator()(std::vector<int>* out) const { list(out, "integers like [2, 3]", integer); }
  void operator()(std::vector<double>* out) const { list(out, "numbers like [1.5, 2]", number); }

 private:
  // A YAML list into *out, element by element; a list from a file names each element's
  // line:col, and an element's key is "key[i]".
  template <class T, class Element>
  void list(std::vector<T>* out, const char* what, Element element) const {
    const YAML::Node& n = given_.value;
    out->clear();
    if (n.IsNull()) return;
    if (!n.IsSequence()) {
      PPT_THROW("{}: {}: expected a list of {}, got {}", given_.origin, key_, what, describe(n));
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const std::string at = given_.from_file && !n[i].Mark().is_null() ? mark_text(source_, n[i].Mark())
                                                                        : given_.origin;
      out->push_back(element(n[i], at, fmt::format("{}[{}]", key_, i)));
    }
  }
  static double number(const YAML::Node& n, const std::string& at, const std::string& key) {
    std::optional<double> v = n.IsScalar() ? parse_number(n.Scalar()) : std::nullopt;
    if (!v || !std::isfinite(*v)) PPT_THROW("{}: {}: expected a finite number, got {}", at, key, describe(n));
    return *v;
  }
  static int integer(const YAML::Node& n, const std::string& at, const std::string& key) {
    std::optional<long long> v = n.IsScalar() ? parse_integer(n.Scalar()) : std::nullopt;
    if (!v) PPT_THROW("{}: {}: expected an integer, got {}", at, key, describe(n));
    if (*v < std::numeric_limits<int>::min() || *v > std::numeric_limits<int>::max()) {
      PPT_THROW("{}: {}: integer out of range, got {}", at, key, describe(n));
    }
    return static_cast<int>(*v);
  }

  const std::string& source_;
  const GivenValue& given_;
  const std::string& key_;
};

YAML::Node parse_document(const std::string& yaml_text, const std::string& source_name) {
  try {
    return YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    PPT_THROW("{}: invalid YAML: {}", mark_text(source_name, e.mark), e.msg);
  }
}

}  // namespace

Config parse_config_text(const std::string& yaml_text, const std::string& source_name,
                         const std::vector<std::string>& overrides) {
  Config config;
  config.source_path = source_name;
  Schema schema(config);
  std::map<std::string, GivenValue> given;
  collect_file_keys(parse_document(yaml_text, source_name), source_name, schema, given);
  for (const std::string& text : overrides) apply_override(text, schema, config, given);
  for (ConfigField& f : config_fields(config)) {
    auto it = given.find(f.key());
    if (it == given.end()) continue;
    std::visit(Converter(source_name, it->second, it->first), f.ref);
    config.key_origin[it->first] = it->second.origin;
  }
  // A V (schedule zbv, or a CSV schedule placed in a V) is exactly two chunks per rank: unless
  // given, virtual_stages follows it. A given value other than 2 is still an error (checks).
  const std::string& schedule = config.pipeline.schedule;
  const bool vee = schedule == "zbv" || (schedule.rfind("csv:", 0) == 0 && config.pipeline.placement == "vee");
  if (vee && !given.count("pipeline.virtual_stages")) config.pipeline.virtual_stages = 2;
  check_config(config);
  return config;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  // C stdio rather than ifstream: it reports why (ENOENT, EACCES, EISDIR on read).
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) PPT_THROW("cannot read config '{}': {}", path, std::strerror(errno));
  std::string text;
  char buffer[65536];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
  int read_errno = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (read_errno != 0) PPT_THROW("cannot read config '{}': {}", path, std::strerror(read_errno));
  return parse_config_text(text, path, overrides);
}

}  // namespace pptrain
