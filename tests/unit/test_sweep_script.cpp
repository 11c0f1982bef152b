// Note [Sweep values are data]: every quoting helper reads back exactly, through the real reader
// (bash, yaml-cpp) or a model of sbatch's directive parser; control characters are refused by key.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "app/sweep_script.h"
#include "core/errors.h"

using namespace cohort;

namespace {

const std::vector<std::string> kPayloads = {
    "plain", "", " lead", "trail ", "semi;colon", "$(touch x)", "`touch x`", "a'b", "a\"b",
    "a'\"'b", "hash #c", "hash#glued", "#start", "back\\slash", "\\", "'", "\"", "a b  c",
    "colon: space", "null", "~", "true", "- dash", "[x, y]", "{k: v}", "&a", "*a", "!t", "%p",
    "@at", "|", ">", "?", "x=y", "tab\there", "new\nline", "cr\rx", std::string("nul\0x", 5),
    "\x7f", "ünïcödé", "--wrap=sh"};

// sbatch's parser of one #SBATCH argument (src/sbatch/opt.c _get_argument, Slurm 20-23): '\'
// escapes the next character; ' or " start a quoted run ended by the same quote; outside
// quotes, white space ends the argument and '#' starts a comment. `old_hash` models the older
// parser, where '#' starts a comment even inside double quotes and ' is literal.
std::string sbatch_argument(const std::string& line, bool old_hash) {
  std::string arg;
  char quote = 0;
  bool escape = false;
  for (char c : line) {
    if (escape) {
      escape = false;
    } else if (c == '\\') {
      escape = true;
      continue;
    } else if (quote != 0 && !old_hash) {
      if (c == quote) {
        quote = 0;
        continue;
      }
    } else if (c == '"' || (c == '\'' && !old_hash)) {
      quote = quote == 0 ? c : 0;
      continue;
    } else if (c == '#') {
      break;
    } else if (quote == 0 && (c == ' ' || c == '\t')) {
      break;
    }
    arg += c;
  }
  return arg;
}

// A valid spec to spoil one field at a time.
SbatchSpec valid_spec() {
  SbatchSpec s;
  s.time = "01:00:00";
  s.nodes = "1";
  s.ntasks = "2";
  s.cpus_per_task = "1";
  s.output_pattern = std::string("/o/runs/slurm-%A_%a.out");
  s.pending_list = std::string("/o/pending.txt");
  s.runs_dir = std::string("/o/runs");
  s.exe = std::string("/bin/cohort");
  s.array_size = 3;
  return s;
}

bool has_control(const std::string& s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  return false;
}

}  // namespace

TEST_CASE("shell_quote reads back exactly in bash", "[sweep]") {
  for (const auto& p : kPayloads) {
    if (p.find('\0') != std::string::npos) continue;  // no argument can hold a NUL
    CAPTURE(p);
    const Captured c = run_capture({"bash", "-c", "printf %s " + shell_quote(p)});
    REQUIRE(c.status == 0);
    CHECK(c.out == p);
  }
}

TEST_CASE("run_capture passes arguments without a shell", "[sweep]") {
  for (const auto& p : kPayloads) {
    if (p.find('\0') != std::string::npos) continue;
    CAPTURE(p);
    const Captured c = run_capture({"printf", "%s", p});
    CHECK(c.status == 0);
    CHECK(c.out == p);
  }
  CHECK(run_capture({"false"}).status == 1);
  CHECK(run_capture({"/nonexistent/program"}).status == -1);
}

TEST_CASE("directive_quote reads back exactly in sbatch's parser", "[sweep]") {
  for (const auto& p : kPayloads) {
    if (has_control(p)) continue;  // refused before quoting (below)
    CAPTURE(p);
    const std::string line = " --partition=" + directive_quote(p) + " # a comment";
    CHECK(sbatch_argument(line.substr(1), false) == "--partition=" + p);
    CHECK(sbatch_argument(line.substr(1), true) == "--partition=" + p);
  }
}

TEST_CASE("yaml_text and yaml_document load back as the same value", "[sweep]") {
  for (const auto& p : kPayloads) {
    CAPTURE(p);
    const YAML::Node scalar(p);
    CHECK(YAML::Load(yaml_text(scalar)).Scalar() == p);
    YAML::Node doc;
    doc["data"]["path"] = p;
    doc["list"].push_back(p);
    const std::string text = yaml_document(doc);
    CHECK(YAML::Load(text)["data"]["path"].Scalar() == p);
    CHECK(YAML::Load(text)["list"][0].Scalar() == p);
    CHECK(text.find('\r') == std::string::npos);  // other YAML readers break lines at CR
  }
  CHECK(YAML::Load(yaml_text(YAML::Load("[1, {a: b}]")))[1]["a"].Scalar() == "b");
  CHECK(YAML::Load(yaml_text(YAML::Node())).IsNull());
}

TEST_CASE("values that become directives are checked, naming the key", "[sweep]") {
  CHECK_NOTHROW(check_sbatch_options(valid_spec()));
  const std::vector<std::pair<std::string, std::string SbatchSpec::*>> keys = {
      {"slurm.partition", &SbatchSpec::partition}, {"slurm.account", &SbatchSpec::account},
      {"slurm.time", &SbatchSpec::time},           {"slurm.nodes", &SbatchSpec::nodes},
      {"slurm.ntasks", &SbatchSpec::ntasks},       {"slurm.cpus_per_task", &SbatchSpec::cpus_per_task}};
  for (const auto& [key, member] : keys) {
    for (const std::string& bad :
         std::vector<std::string>{"1\n#SBATCH --wrap=x", "1\r", std::string("1\0", 2), "1\x1b",
                                  "1\x7f", "hetjob", "x PackJob y"}) {
      CAPTURE(key, bad);
      SbatchSpec s = valid_spec();
      s.*member = bad;
      CHECK_THROWS_WITH(check_sbatch_options(s), Catch::StartsWith(key));
    }
  }
  for (const std::string bad : {"0", "-1", "2x", "1 2", "$(x)", ""}) {
    SbatchSpec s = valid_spec();
    s.ntasks = bad;
    CHECK_THROWS_WITH(check_sbatch_options(s), Catch::StartsWith("slurm.ntasks"));
  }
  for (const std::string bad : {"touch x", "#SBATCH --a\n#SBATCH --b", "#SBATCH --a\rx", " #SBATCH"}) {
    SbatchSpec s = valid_spec();
    s.extra = {"#SBATCH --qos=short", bad};
    CHECK_THROWS_WITH(check_sbatch_options(s), Catch::StartsWith("slurm.extra[1]"));
  }
  SbatchSpec s = valid_spec();
  s.output_pattern = "/o\n#SBATCH --wrap=x/runs/slurm-%A_%a.out";
  CHECK_THROWS_WITH(sbatch_script(s), Catch::StartsWith("--out"));
}

TEST_CASE("the job-array script has one line per directive whatever the values", "[sweep]") {
  for (const auto& p : kPayloads) {
    if (has_control(p)) continue;
    CAPTURE(p);
    SbatchSpec s;
    s.time = "01:00:00";
    s.nodes = "1";
    s.ntasks = "2";
    s.cpus_per_task = "1";
    s.partition = p.empty() ? "x" : p;
    s.account = p.empty() ? "x" : p;
    if (p.find("hetjob") != std::string::npos) continue;
    s.output_pattern = "/o" + p + "/runs/slurm-%A_%a.out";
    s.pending_list = "/o" + p + "/pending.txt";
    s.runs_dir = "/o" + p + "/runs";
    s.exe = "/bin/coh" + p;
    s.sweep_file = "/s" + p;
    s.array_size = 2;
    const std::string text = sbatch_script(s);
    std::size_t lines = 0, directives = 0, pos = 0;
    while (pos < text.size()) {
      const std::size_t nl = text.find('\n', pos);
      const std::string line = text.substr(pos, nl - pos);
      ++lines;
      if (line.rfind("#SBATCH", 0) == 0) ++directives;
      pos = nl + 1;
    }
    CHECK(directives == 11);  // 9 options + signal and requeue
    CHECK(lines == 24);
    const Captured syntax = run_capture({"bash", "-n", "-c", text});
    CHECK(syntax.status == 0);
  }
}
