#include "app/sweep_script.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <regex>
#include <stdexcept>

#include <fmt/format.h>

#include "core/errors.h"

extern char** environ;

namespace cohort {
namespace {

bool is_control(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

void check_matches(const std::string& key, const std::string& value, const std::regex& re,
                   const char* what) {
  require_usage(std::regex_match(value, re),
                fmt::format("{} = '{}' is not allowed: expected {}", key, printable(value), what));
}

}  // namespace

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string directive_quote(const std::string& s) {
  const auto plain = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("._:/=,+-@%", c) != nullptr;
  };
  if (!s.empty() && std::all_of(s.begin(), s.end(), plain)) return s;  // reads back as itself
  std::string out = "\"";
  for (char c : s) {
    if (c == '\\' || c == '"' || c == '\'' || c == '#') out += '\\';
    out += c;
  }
  return out + "\"";
}

void require_printable(const std::string& key, const std::string& s) {
  const auto bad = std::find_if(s.begin(), s.end(), is_control);
  if (bad == s.end()) return;
  throw UsageError(fmt::format(
      "{} = '{}' is not allowed: it holds the control character 0x{:02x} (a line break would "
      "start a new line in the generated script)",
      key, printable(s), static_cast<unsigned>(static_cast<unsigned char>(*bad))));
}

std::string printable(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      default:
        if (is_control(c))
          out += fmt::format("\\x{:02x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        else
          out += c;
    }
  }
  return out;
}

namespace {

// yaml-cpp quotes every scalar that plain text would change ('#', ': ', 'null', ...) but writes
// some control characters (a carriage return) raw, which other YAML readers take as a line
// break: those scalars are written double-quoted, with escapes.
void emit_node(YAML::Emitter& e, const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      if (std::any_of(n.Scalar().begin(), n.Scalar().end(), is_control))
        e << YAML::DoubleQuoted << n.Scalar();
      else
        e << n.Scalar();
      break;
    case YAML::NodeType::Sequence:
      if (n.Style() == YAML::EmitterStyle::Flow) e << YAML::Flow;
      e << YAML::BeginSeq;
      for (const auto& item : n) emit_node(e, item);
      e << YAML::EndSeq;
      break;
    case YAML::NodeType::Map:
      if (n.Style() == YAML::EmitterStyle::Flow) e << YAML::Flow;
      e << YAML::BeginMap;
      for (const auto& kv : n) {
        e << YAML::Key;
        emit_node(e, kv.first);
        e << YAML::Value;
        emit_node(e, kv.second);
      }
      e << YAML::EndMap;
      break;
    default:
      e << YAML::Null;
  }
}

}  // namespace

std::string yaml_text(const YAML::Node& node) {
  YAML::Emitter e;
  e << YAML::Flow;
  emit_node(e, node);
  return e.c_str();
}

std::string yaml_document(const YAML::Node& node) {
  YAML::Emitter e;
  emit_node(e, node);
  return std::string(e.c_str()) + "\n";
}

void check_sbatch_options(const SbatchSpec& spec) {
  const std::pair<const char*, const std::string*> values[] = {
      {"slurm.partition", &spec.partition}, {"slurm.account", &spec.account},
      {"slurm.time", &spec.time},           {"slurm.nodes", &spec.nodes},
      {"slurm.ntasks", &spec.ntasks},       {"slurm.cpus_per_task", &spec.cpus_per_task}};
  for (const auto& [key, value] : values) require_printable(key, *value);
  for (const auto& [key, value] : values) {
    // sbatch reads these words anywhere in a directive line as a job separator.
    std::string lower = *value;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    require_usage(lower.find("hetjob") == std::string::npos &&
                      lower.find("packjob") == std::string::npos,
                  fmt::format("{} = '{}' is not allowed: sbatch reads 'hetjob' and 'packjob' in a "
                              "directive as a job separator",
                              key, *value));
  }
  const std::regex positive("[1-9][0-9]{0,8}"), nodes("[1-9][0-9]{0,8}(-[1-9][0-9]{0,8})?"),
      time("[0-9][0-9:-]{0,19}|UNLIMITED|INFINITE|unlimited|infinite");
  check_matches("slurm.ntasks", spec.ntasks, positive, "a positive integer");
  check_matches("slurm.cpus_per_task", spec.cpus_per_task, positive, "a positive integer");
  check_matches("slurm.nodes", spec.nodes, nodes, "a node count N or a range N-M");
  check_matches("slurm.signal_grace", spec.signal_grace, std::regex("[0-9]{1,5}"),
                "seconds (0 to 99999) before the time limit at which runs are told to stop");
  check_matches("slurm.time", spec.time, time,
                "a SLURM time limit (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM:SS or UNLIMITED)");
  for (std::size_t i = 0; i < spec.extra.size(); ++i) {
    const std::string key = fmt::format("slurm.extra[{}]", i);
    require_printable(key, spec.extra[i]);
    require_usage(spec.extra[i].rfind("#SBATCH ", 0) == 0,
                  fmt::format("{} = '{}' is not allowed: extra lines are #SBATCH directives "
                              "(\"#SBATCH --option=value\"), not shell commands",
                              key, spec.extra[i]));
  }
}

std::string sbatch_script(const SbatchSpec& spec) {
  check_sbatch_options(spec);
  require_printable("--out", spec.output_pattern);
  std::string s = "#!/bin/bash\n";
  s += "# Generated by `cohort sweep` from " + printable(spec.sweep_file) + "\n";
  auto directive = [&](const std::string& option, const std::string& value) {
    s += "#SBATCH --" + option + "=" + directive_quote(value) + "\n";
  };
  s += "#SBATCH --job-name=cohort-sweep\n";
  s += fmt::format("#SBATCH --array=0-{}\n", spec.array_size == 0 ? 0 : spec.array_size - 1);
  directive("nodes", spec.nodes);
  directive("ntasks", spec.ntasks);
  directive("cpus-per-task", spec.cpus_per_task);
  directive("time", spec.time);
  directive("output", spec.output_pattern);
  if (!spec.partition.empty()) directive("partition", spec.partition);
  if (!spec.account.empty()) directive("account", spec.account);
  if (spec.overcommit) s += "#SBATCH --overcommit\n";
  // Preemption (Note [Checkpoints]): SIGUSR1 reaches the batch shell signal_grace seconds before
  // the time limit; the shell passes it to the launcher, which passes it to the ranks; they
  // finish their round, write a checkpoint and exit 130; the task then requeues itself, and the
  // requeued task resumes from the checkpoint.
  directive("signal", "B:USR1@" + spec.signal_grace);
  s += "#SBATCH --requeue\n";
  for (const auto& line : spec.extra) s += line + "\n";
  s += "set -uo pipefail\n";
  s += "RUN=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" " + shell_quote(spec.pending_list) + ")\n";
  s += "DIR=" + shell_quote(spec.runs_dir) + "/\"$RUN\"\n";
  // The runs were chosen to be (re)run when the script was written: --resume continues this
  // config's newest checkpoint, and --overwrite replaces a stale or failed results file of this
  // sweep (never a foreign file or a run in progress), starting afresh.
  const std::string run = shell_quote(spec.exe) +
                          " run --resume --overwrite \"$DIR/config.yaml\" >> \"$DIR/log.txt\" "
                          "2>&1 &\n";
  if (spec.use_srun) {
    s += "srun --mpi=pmix -n \"$SLURM_NTASKS\" " + run;
  } else {
    s += "export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\n";
    s += "mpirun -np \"$SLURM_NTASKS\" " + run;
  }
  s += "STEP=$!\n";
  s += "trap 'kill -USR1 \"$STEP\" 2>/dev/null' USR1\n";
  s += "while :; do wait \"$STEP\"; RC=$?; kill -0 \"$STEP\" 2>/dev/null || break; done\n";
  s += "if [ \"$RC\" -eq 130 ]; then\n";
  s += "  scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n";
  s += "fi\n";
  s += "exit \"$RC\"\n";
  return s;
}

Captured run_capture(const std::vector<std::string>& argv) {
  Captured c;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  std::vector<char*> args;
  std::vector<std::string> copy = argv;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return c;
  }
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) {
      c.out.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  c.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return c;
}

}  // namespace cohort
