// Hostile and careless input through the command line, table-driven: each case is a command, the
// exit status it must give and a pattern its error must contain. Every case also checks that no
// internal message leaks (a library's exception text instead of a sentence), that nothing hangs
// (a timeout wraps each command) and that nothing aborts. A small tmpfs stands in for a full disk.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "blocks/parse_number.h"
#include "datasets/annotations.h"
#include "models/checkpoint.h"
#include "models/npz.h"
#include "tests/test_util.h"

using namespace trecvit;
namespace fs = std::filesystem;

namespace {

const std::string kBin = TRECVIT_BIN, kConfigs = TRECVIT_CONFIG_DIR;

// What must never reach a user: library internals, aborts, uncaught exception names.
const char* const kLeaks[] = {"stoll",          "stoi",          "stod",           "at() was not in the map",
                              "json.exception", "basic_filebuf", "std::bad_alloc", "enforce fail",
                              "terminate called", "Exception raised from", "alloc_cpu.cpp", "c10::",
                              "what():",        "Aborted",       "core dumped",    "-nan"};

struct Case {
  std::string name, command;  // command: arguments to trecvit
  int status;                 // expected exit status
  std::string pattern;        // the error must contain this
};

void write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string npy_with_shape(const std::string& shape) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
  header.resize(118, ' ');
  header += "\n";
  return std::string("\x93NUMPY\x01\x00", 8) + char(header.size() & 0xff) + char(header.size() >> 8) + header + std::string(16, '\0');
}

void run_cases(const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    std::string out;
    const int rc = test::run_command("timeout -s KILL 120 " + kBin + " " + c.command, &out);
    EXPECT_EQ(rc, c.status) << c.name << ": " << c.command << "\n" << out;
    EXPECT_NE(out.find(c.pattern), std::string::npos) << c.name << ": expected '" << c.pattern << "' in\n" << out;
    if (c.status != 0) {
      EXPECT_NE(out.find("trecvit: error: "), std::string::npos) << c.name << "\n" << out;
    }
    for (const char* leak : kLeaks) EXPECT_EQ(out.find(leak), std::string::npos) << c.name << " leaks '" << leak << "':\n" << out;
  }
}

struct Fixture {
  std::string dir, ckpt, ssf, clip;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture f{test::temp_dir(), "", test::generated_ssf(kBin, "--train 8 --validation 4 --frames 8 --size 32 --seed 3")};
    std::string out;
    f.ckpt = f.dir + "/tiny.pt";
    f.clip = f.dir + "/clip.npy";
    if (test::run_command(kBin + " init --config " + kConfigs + "/tiny.json --out " + f.ckpt, &out) != 0 ||
        test::run_command(kBin + " synth-clip --out " + f.clip + " --frames 4 --size 32", &out) != 0)
      throw std::runtime_error(out);
    return f;
  }();
  return f;
}

}  // namespace

TEST(Hostile, FilesThatAreNotRegularFilesFailAtOnce) {
  const auto& f = fixture();
  const std::string fifo = f.dir + "/pipe", fifo_npy = f.dir + "/pipe.npy";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  ASSERT_EQ(mkfifo(fifo_npy.c_str(), 0600), 0);
  fs::create_directories(f.dir + "/adir");
  run_cases({
      {"fifo video probe", "probe " + fifo, 1, "is not a regular file (a named pipe)"},
      {"fifo clip predict", "predict --checkpoint " + f.ckpt + " " + fifo_npy, 1, "named pipe"},
      {"fifo config", "info --config " + fifo, 1, "named pipe"},
      {"fifo checkpoint", "predict --checkpoint " + fifo + " " + f.clip, 1, "named pipe"},
      {"directory config", "info --config " + f.dir + "/adir", 1, "is a directory, not a file"},
      {"fifo train config", "train --config " + kConfigs + "/tiny.json --train-config " + fifo + " --data " + f.ssf +
                                " --out " + f.dir + "/r1 --steps 1",
       1, "named pipe"},
      {"fifo csv list", "data inspect --format csv --root " + fifo, 1, "named pipe"},
  });
}

TEST(Hostile, BadValuesAreRefusedNamingTheFieldOrFlag) {
  const auto& f = fixture();
  const std::string d = f.dir;
  write(d + "/empty.json", "{}");
  write(d + "/overflow.json", R"({"width": 1e400, "depth": 2})");
  write(d + "/dupkey.json", R"({"width": 32, "depth": 2, "num_heads": 2, "layer_channel_mixers": {"1": {"type": "mlp"}, "01": {"type": "mlp"}}})");
  write(d + "/huge.json", R"({"width": 1000000000, "depth": 2, "num_heads": 1, "mlp_dim": 4, "lru_width": 4, "lru_heads": 1})");
  write(d + "/experts.json", R"({"width": 32, "depth": 2, "num_heads": 2, "channel_mixer": {"type": "peer", "num_experts": 1000000000000}})");
  write(d + "/float.json", R"({"width": 32.5, "depth": 2})");
  write(d + "/neg.npy", npy_with_shape("-4, 3"));
  write(d + "/over.npy", npy_with_shape("4294967296, 4294967296, 16"));
  // SSv2 with a hostile id, a null id, duplicate ids; Kinetics with a NaN time and an escaping label.
  write(d + "/ssv2/labels.json", R"({"Pushing something": "0"})");
  write(d + "/ssv2/train.json", R"([{"id": "../../etc/passwd", "template": "Pushing [something]"}])");
  write(d + "/ssv2/validation.json", R"([{"id": null, "template": "Pushing [something]"}])");
  write(d + "/ssv2b/labels.json", R"({"Pushing something": "0"})");
  write(d + "/ssv2b/train.json", R"([{"id": "7", "template": "Pushing something"}, {"id": 7, "template": "Pushing something"}])");
  write(d + "/k400/annotations/train.csv", "label,youtube_id,time_start,time_end,split\nabseiling,abc,nan,10,train\n");
  write(d + "/k400b/annotations/train.csv", "label,youtube_id,time_start,time_end,split\n../../etc,abc,0,10,train\n");
  const std::string train = "train --config " + kConfigs + "/tiny.json --data " + f.ssf + " --out " + d + "/run ";
  run_cases({
      {"steps 0", train + "--steps 0", 105, "--steps"},
      {"negative steps", train + "--steps -3", 105, "--steps"},
      {"demo steps 0", "demo --steps 0 --out " + d + "/demo", 105, "must be >= 1 (or -1"},
      {"views 1x1x1", "eval --checkpoint " + f.ckpt + " --data " + f.ssf + " --views 1x1x1", 1, "--views: expected TEMPORALxSPATIAL"},
      {"empty model config", "info --config " + d + "/empty.json", 1, "missing 'width'"},
      {"number overflow", "info --config " + d + "/overflow.json", 1, "invalid JSON"},
      {"duplicate layer key", "info --config " + d + "/dupkey.json", 1, "layer_channel_mixers.01"},
      {"float for int", "info --config " + d + "/float.json", 1, "width"},
      {"absurd width", "info --config " + d + "/huge.json", 1, "do not fit in this machine's"},
      {"absurd experts", "info --config " + d + "/experts.json", 1, "do not fit in this machine's"},
      {"negative npy shape", "predict --checkpoint " + f.ckpt + " " + d + "/neg.npy", 1, "is not a dimension"},
      {"overflowing npy shape", "predict --checkpoint " + f.ckpt + " " + d + "/over.npy", 1, "needs more bytes"},
      {"ssv2 id walks out", "data inspect --format ssv2 --root " + d + "/ssv2 --split train", 1, "not a file name inside the dataset root"},
      {"ssv2 null id", "data inspect --format ssv2 --root " + d + "/ssv2 --split validation", 1, "'id' must be a string"},
      {"ssv2 duplicate id", "data inspect --format ssv2 --root " + d + "/ssv2b --split train", 1, "duplicate id '7'"},
      {"kinetics nan time", "data inspect --format kinetics --root " + d + "/k400 --split train", 1, "time_start 'nan'"},
      {"kinetics escaping label", "data inspect --format kinetics --root " + d + "/k400b --split train", 1, "label '../../etc'"},
      {"workers absurd", "eval --checkpoint " + f.ckpt + " --data " + f.ssf + " --workers 100000", 105, "--workers"},
      {"threads absurd", "--threads 100000 info --config " + kConfigs + "/tiny.json", 105, "--threads"},
      {"threads past 4x the cores", "--threads " + std::to_string(std::max(64u, 4 * std::thread::hardware_concurrency()) + 1) +
                                        " info --config " + kConfigs + "/tiny.json", 105, "--threads"},
      {"indices huge", "frames " + f.ssf + "/videos/x.webm --md5 --indices 0-999999999999", 105, "--indices"},
      {"prepare into its root", "data prepare --root " + f.ssf + " --out " + f.ssf + "/small", 1, "must be outside --root"},
  });
}

TEST(Hostile, SilentSuccessIsAFailure) {
  const auto& f = fixture();
  const std::string d = f.dir;
  // A checkpoint with a flipped bit in its tensor data.
  const std::string flipped = d + "/flipped.pt";
  fs::copy_file(f.ckpt, flipped, fs::copy_options::overwrite_existing);
  {
    std::fstream io(flipped, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(0, std::ios::end);
    const auto size = static_cast<int64_t>(io.tellg());
    io.seekg(size / 2);
    char c;
    io.get(c);
    io.seekp(size / 2);
    io.put(static_cast<char>(c ^ 0x10));
  }
  // A checkpoint whose weights are NaN.
  const std::string nan = d + "/nan.pt";
  {
    auto m = load_checkpoint(f.ckpt);
    torch::NoGradGuard ng;
    for (auto& p : m->parameters()) p.fill_(std::numeric_limits<float>::quiet_NaN());
    save_checkpoint(*m, nan);
  }
  fs::create_directories(d + "/ro");
  chmod((d + "/ro").c_str(), 0500);
  const bool root_user = geteuid() == 0;  // root writes anywhere: the read-only case is then moot
  std::vector<Case> cases = {
      {"flipped bit", "predict --checkpoint " + flipped + " " + f.clip, 1, "is damaged"},
      {"nan weights", "predict --checkpoint " + nan + " " + f.clip, 1, "not finite"},
      {"report into a missing folder", "eval --checkpoint " + f.ckpt + " --data " + f.ssf + " --report " + d + "/nope/r.json", 1,
       "does not exist"},
      {"inspect a missing labels file", "data inspect --format ssv2 --root " + d + "/ro", 1, "problem"},
      {"inspect problems allowed", "data inspect --format ssv2 --root " + d + "/ro --allow-problems", 0, "labels.json"},
      {"eval with more classes than the data", "eval --checkpoint " + f.ckpt + " --data " + f.ssf, 1, "classes, the dataset"},
  };
  if (!root_user) cases.push_back({"report read-only", "eval --checkpoint " + f.ckpt + " --data " + f.ssf + " --report " + d + "/ro/r.json", 1, "not writable"});
  run_cases(cases);
}

// Training into a file system that fills up: a clear error, exit 1 (not an abort), no temporary
// left behind, and the last good checkpoint intact for --resume.
TEST(Hostile, AFullDiskIsAClearErrorAndLeavesNothingBehind) {
  const auto& f = fixture();
  // Room for the run folder's small files and one training checkpoint, but not for the next
  // one written beside it.
  std::string out;
  const std::string config = f.dir + "/tiny10.json";  // the generated data's 10 classes
  {
    auto j = nlohmann::json::parse(std::ifstream(kConfigs + "/tiny.json"));
    j["num_classes"] = 10;
    std::ofstream(config) << j.dump();
  }
  const std::string train = " --threads 1 train --config " + config + " --data " + f.ssf + " --batch-size 2 --workers 1 ";
  ASSERT_EQ(test::run_command(kBin + train + "--steps 1 --out " + f.dir + "/sizing", &out), 0) << out;
  const auto checkpoint_bytes = fs::file_size(f.dir + "/sizing/checkpoint.pt");
  const std::string mnt = f.dir + "/small-disk", run = mnt + "/run";
  fs::create_directories(mnt);
  const std::string size = "size=" + std::to_string((checkpoint_bytes * 3 / 2 + (256 << 10)) / 1024) + "k";
  if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, size.c_str()) != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << "): the full-disk case needs one";
  }
  struct Unmount {
    std::string at;
    ~Unmount() { umount2(at.c_str(), MNT_DETACH); }
  } unmount{mnt};
  const int rc = test::run_command("timeout -s KILL 300 " + kBin + train + "--out " + run + " --steps 40 --set train.checkpoint_every=2", &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("No space left on device"), std::string::npos) << out;
  for (const char* leak : kLeaks) EXPECT_EQ(out.find(leak), std::string::npos) << leak << "\n" << out;
  for (const auto& e : fs::directory_iterator(run)) EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  if (fs::exists(run + "/checkpoint.pt")) EXPECT_NO_THROW(load_checkpoint(run + "/checkpoint.pt"));
}

// The other commands: streaming, comparison, NEVIS and the benchmarks.
TEST(Hostile, StreamCompareNevisAndBenchRefuseBadInput) {
  const auto& f = fixture();
  const std::string d = f.dir;
  const std::string fifo = d + "/labels-pipe";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string data = R"("data": {"root": ")" + f.ssf + R"(", "format": "ssv2"}, )";
  write(d + "/spec-seeds.json", "{" + data + R"("model": ")" + kConfigs + R"(/tiny.json", "seeds": 1.5, "arms": [{"name": "a"}]})");
  write(d + "/spec-arms.json", "{" + data + R"("model": ")" + kConfigs + R"(/tiny.json", "arms": []})");
  write(d + "/spec-model.json", "{" + data + R"("model": ")" + d + R"(/labels-pipe", "arms": [{"name": "a"}]})");
  write(d + "/spec-bad.json", "{\"model\": ");
  write(d + "/stream-bad.json", R"({"name": "x", "events": [{"dataset": "uci_digits", "year": "1998"}]})");
  const std::string stream = "stream --checkpoint " + f.ckpt + " --no-drop --as-fast-as-possible ";
  run_cases({
      {"stream missing file", stream + d + "/nope.webm", 1, "nope.webm"},
      {"stream bad readout", stream + "--readout ema:2 " + f.ssf + "/videos/0.webm", 1, "--readout ema:2"},
      {"stream labels from a pipe", stream + "--labels " + fifo + " " + f.ssf + "/videos/0.webm", 1, "named pipe"},
      {"compare float seeds", "compare --dry-run --out " + d + "/cmp --spec " + d + "/spec-seeds.json", 1, "seeds: must be an integer"},
      {"compare no arms", "compare --dry-run --out " + d + "/cmp --spec " + d + "/spec-arms.json", 1, "'arms' must be a non-empty list"},
      {"compare model from a pipe", "compare --dry-run --out " + d + "/cmp --spec " + d + "/spec-model.json", 1, "named pipe"},
      {"compare cut spec", "compare --dry-run --out " + d + "/cmp --spec " + d + "/spec-bad.json", 1, "invalid JSON"},
      {"nevis lr range", "nevis run --out " + d + "/nv --stream debug --lr-range 1e-3,abc", 105, "--lr-range"},
      {"nevis infinite lr", "nevis run --out " + d + "/nv --stream debug --data " + d + " --lr-range 1e-3,inf", 1, "--lr-range"},
      {"nevis steps 0", "nevis run --out " + d + "/nv --stream debug --steps 0", 105, "--steps"},
      {"nevis stream year a string", "nevis run --out " + d + "/nv --stream " + d + "/stream-bad.json --data " + d, 1, "year"},
      {"bench option not a number", "bench scan --quick --set width=abc", 1, "--set width=abc: not an integer"},
  });
}

TEST(Hostile, NumbersParseWholeStringsOnly) {
  EXPECT_EQ(parse_int("12"), 12);
  EXPECT_EQ(parse_int("-3"), -3);
  EXPECT_EQ(parse_int("9223372036854775807"), INT64_MAX);
  for (const char* bad : {"", "12a", " 1", "1 ", "+1", "0x10", "9223372036854775808", "1e3", "-"})
    EXPECT_FALSE(parse_int(bad).has_value()) << bad;
  EXPECT_EQ(parse_double("1e-3"), 1e-3);
  EXPECT_EQ(parse_double("-2.5"), -2.5);
  for (const char* bad : {"", "1.5x", " 2", "1e999", "abc", "1,5"}) EXPECT_FALSE(parse_double(bad).has_value()) << bad;
}

// The source-level half of the leak check: the patterns that let internals reach a user are
// absent from the toolkit's own code (tests excluded).
// Inputs the fuzzers found, kept as known answers.
TEST(Hostile, FuzzerFindingsStayFixed) {
  const auto dir = test::temp_dir();
  // A list row whose path cannot even be looked up (a name over 255 bytes) is a missing video,
  // not a filesystem_error escaping the loader.
  write(dir + "/list.csv", "path,label\n" + std::string(300, 'a') + ".mp4,1\nb.mp4,0\n");
  const auto split = data::load_csv_list(dir + "/list.csv");
  EXPECT_TRUE(split.items.empty());
  EXPECT_EQ(split.missing.size(), 2u);

  // An empty array (a zero in the shape) reads as an empty tensor; its data pointer is null.
  write_npz(dir + "/empty.npz", {{"x", torch::zeros({0, 4, 4, 3}, torch::kByte)}});
  const auto arrays = read_npz(dir + "/empty.npz");
  ASSERT_EQ(arrays.size(), 1u);
  EXPECT_EQ(arrays[0].second.sizes(), (std::vector<int64_t>{0, 4, 4, 3}));

  // A member whose directory entry claims 2 GB is refused before 2 GB are allocated.
  write_npz(dir + "/lying.npz", {{"x", torch::ones({4, 4})}});
  std::string zip;
  {
    std::ifstream in(dir + "/lying.npz", std::ios::binary);
    zip.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string central("PK\x01\x02", 4), local("PK\x03\x04", 4), huge("\xff\xff\xff\x7f", 4);
  const auto c = zip.find(central), l = zip.find(local);
  ASSERT_NE(c, std::string::npos);
  ASSERT_NE(l, std::string::npos);
  zip.replace(c + 24, 4, huge);  // uncompressed size in the central directory
  zip.replace(l + 22, 4, huge);  // and in the local header
  write(dir + "/lying.npz", zip);
  try {
    read_npz(dir + "/lying.npz");
    ADD_FAILURE() << "a member claiming 2 GB was read";
  } catch (const NpyError& e) {
    EXPECT_NE(std::string(e.what()).find("member 'x.npy' declares 2147483647 bytes"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Hostile, SourcesHoldNoPatternThatLeaksInternals) {
  const fs::path root = TRECVIT_SOURCE_DIR;
  // std::stoll and friends accept "12abc" and fail with what() == "stoll": parse_int/parse_double.
  const std::regex sto(R"(\bstd::sto(i|l|ll|ul|ull|f|d|ld)\s*\()");
  // A std::ifstream on a FIFO blocks forever: a file that opens one must also check what it opens
  // (unreadable_reason and friends) or read only /proc files.
  const std::regex guard(R"(unreadable_reason|unreadable_if_present|read_regular_file|is_regular_file|is_plain_file|"/proc/)");
  // The one-argument std::filesystem lookups throw filesystem_error on a name too long or a
  // component that is not a folder (the fuzzer found one in a path,label list): path_exists,
  // is_folder, is_plain_file (blocks/file_safety.h) or the error_code overloads.
  const std::regex throwing_lookup(R"(\b(fs|std::filesystem)::(exists|is_directory|is_regular_file)\(([^(),]|\([^()]*\))*\))");
  // A printed e.what() of a LibTorch error carries its C++ backtrace: what_without_backtrace().
  const std::regex c10_what(R"(c10::Error&\s*(\w+)\)\s*\{[^}]*\1\.what\(\))");
  // nlohmann's what() starts with "[json.exception.type_error.302]": plain_json_error().
  const std::regex json_what(R"(json::exception&\s*(\w+)\)\s*\{[^}]*\1\.what\(\))");
  int files = 0;
  for (const char* dir : {"apps", "blocks", "models", "train", "eval", "jobs", "datasets", "video_io", "bench"}) {
    if (!fs::exists(root / dir)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root / dir)) {
      const auto ext = e.path().extension();
      if (ext != ".cpp" && ext != ".h") continue;
      std::ifstream in(e.path());
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      ++files;
      const auto rel = fs::relative(e.path(), root).string();
      EXPECT_FALSE(std::regex_search(text, sto)) << rel << " calls std::sto*: use parse_int / parse_double (blocks/parse_number.h)";
      if (text.find("std::ifstream") != std::string::npos && rel.find("fuzz") == std::string::npos)
        EXPECT_TRUE(std::regex_search(text, guard)) << rel << " opens a std::ifstream without checking for a regular file";
      EXPECT_FALSE(std::regex_search(text, c10_what)) << rel << " prints a c10::Error's what() (with its backtrace)";
      EXPECT_FALSE(std::regex_search(text, json_what)) << rel << " passes on a JSON exception's what() (with its tag)";
      EXPECT_FALSE(std::regex_search(text, throwing_lookup)) << rel << " calls a std::filesystem lookup that throws";
    }
  }
  EXPECT_GT(files, 100);  // the walk found the sources
}
