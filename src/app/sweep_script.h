// Text that `cohort sweep` puts into files other programs read (bash, sbatch, YAML), and the
// one way it starts another program. Note [Sweep values are data]: a value from a sweep file or
// the command line reaches bash only single-quoted, sbatch only as one quoted directive argument
// (after control characters were refused, naming the key), YAML only through the emitter, and
// programs only as argument vectors, never through a shell.
#pragma once

#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace cohort {

// One bash word that reads back as exactly `s` (single quotes; a ' becomes '\'').
std::string shell_quote(const std::string& s);

// One #SBATCH directive argument that sbatch's parser reads back as exactly `s`: `s` itself when
// it has only letters, digits and ._:/=,+-@%; else double quotes, with \, ", ' and # (a comment
// in older sbatch even inside quotes) escaped by a backslash.
// `s` must be free of control characters (require_printable).
std::string directive_quote(const std::string& s);

// Throws UsageError naming `key` when `s` holds a control character (a byte below 0x20, or 0x7f):
// a newline or carriage return would start a new line in the script.
void require_printable(const std::string& key, const std::string& s);

// `s` with control characters and backslashes written as C escapes: safe inside a comment
// line or a message.
std::string printable(const std::string& s);

// The YAML text of a value that loads back as the same node (quoted where plain text would
// change it: '#', ': ', leading spaces, 'null', '', control characters, ...), in flow style:
// for override values key=TEXT.
std::string yaml_text(const YAML::Node& node);
// The same for a whole document (block style where the node has no style of its own).
std::string yaml_document(const YAML::Node& node);

// What sweep.sbatch needs: the options that become directives, and the paths its lines name.
struct SbatchSpec {
  std::string sweep_file;      // only named in a comment
  std::size_t array_size = 0;  // tasks 0..array_size-1
  std::string partition, account, time, nodes, ntasks, cpus_per_task;
  bool overcommit = false;
  std::vector<std::string> extra;  // whole "#SBATCH ..." lines
  std::string output_pattern;      // --output, with %A/%a already in it
  std::string pending_list;        // file of run ids, one per line
  std::string runs_dir;            // run directories: runs_dir/<run id>/config.yaml
  std::string exe;                 // the cohort executable
  bool use_srun = true;            // srun --mpi=pmix, else mpirun
  std::string signal_grace = "120";  // seconds before the time limit that SIGUSR1 arrives
};

// Checks the options that become directives (each error names its slurm.* key): printable
// everywhere; ntasks and cpus_per_task positive integers, nodes N or N-M, time digits with
// ':' and '-' (or UNLIMITED/INFINITE); extra lines start with "#SBATCH ". Throws UsageError.
void check_sbatch_options(const SbatchSpec& spec);

// The job-array script. Every value is quoted for the reader of its line.
std::string sbatch_script(const SbatchSpec& spec);

// Runs argv[0] (looked up in PATH) with these arguments, no shell, stdin from /dev/null;
// returns its exit status (-1 when it could not start, or died by a signal) and its stdout.
struct Captured {
  int status = -1;
  std::string out;
};
Captured run_capture(const std::vector<std::string>& argv);

}  // namespace cohort
