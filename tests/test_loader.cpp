// The threaded loader on real (ffmpeg-generated) videos: fixed batch shapes when a video is
// corrupt (skipped, counted, replaced), the same batches for the same seed, ranks dealt one
// global shuffle.
#include <set>
#include <filesystem>
#include <fstream>

#include "datasets/loader.h"
#include "tests/test_util.h"

using namespace trecvit::data;
namespace fs = std::filesystem;

namespace {

std::string make_folder_dataset() {
  const fs::path root = trecvit::test::temp_dir();
  auto video = [&](const fs::path& p, int hue) {
    fs::create_directories(p.parent_path());
    std::string out;
    const std::string cmd = "ffmpeg -loglevel error -y -f lavfi -i testsrc=size=48x40:rate=12 -frames:v 10 "
                            "-vf hue=h=" + std::to_string(hue) + " -pix_fmt yuv420p " + p.string();
    EXPECT_EQ(trecvit::test::run_command(cmd, &out), 0) << out;
  };
  video(root / "a" / "0.mp4", 0);
  std::ofstream(root / "a" / "1.mp4") << "this is not a video at all";  // corrupt
  video(root / "a" / "2.mp4", 60);
  video(root / "b" / "3.mp4", 120);
  video(root / "b" / "4.mp4", 180);
  return root.string();
}

LoaderOptions options() {
  LoaderOptions o;
  o.clip.frames = 4;
  o.clip.stride = 2;
  o.height = o.width = 32;
  o.batch_size = 4;
  o.workers = 2;
  o.shuffle = false;
  o.seed = 5;
  return o;
}

}  // namespace

TEST(Loader, CorruptVideoIsSkippedCountedAndReplaced) {
  auto split = load_folder(make_folder_dataset());
  ASSERT_EQ(split.items.size(), 5u);
  VideoLoader loader(split, options());
  for (int i = 0; i < 3; ++i) {
    auto b = loader.next();
    EXPECT_EQ(b.frames.sizes(), (std::vector<int64_t>{4, 4, 32, 32, 3}));
    EXPECT_EQ(b.labels.size(0), 4);
  }
  EXPECT_GE(loader.skipped(), 1);
  auto failures = loader.failures();
  ASSERT_FALSE(failures.empty());
  EXPECT_NE(failures[0].path.find("1.mp4"), std::string::npos);
}

TEST(Loader, SameSeedSameBatchesAndResumablePosition) {
  auto split = load_folder(make_folder_dataset());
  auto o = options();
  o.shuffle = true;
  VideoLoader a(split, o), b(split, o);
  std::vector<torch::Tensor> first;
  for (int i = 0; i < 3; ++i) {
    auto x = a.next(), y = b.next();
    EXPECT_TRUE(torch::equal(x.frames, y.frames)) << "batch " << i;
    EXPECT_TRUE(torch::equal(x.labels, y.labels));
    first.push_back(x.frames);
  }
  VideoLoader c(split, o);
  c.next();
  auto pos = c.position();
  VideoLoader d(split, o);
  d.restore(pos);
  EXPECT_TRUE(torch::equal(d.next().frames, first[1]));
}

// PyTorch's DistributedSampler: the whole split reshuffled each epoch with the shared seed, then
// dealt out; rank r's batch i together with the other ranks' is batch i of one process with
// world x the batch size (same samples, same augmentation), and the remainder is dropped alike.
TEST(Loader, RanksSplitOneGlobalShuffleEachEpoch) {
  auto split = load_folder(make_folder_dataset());
  split.items.erase(split.items.begin() + 1);  // the corrupt one: a replacement comes from the rank's own samples
  const auto item = split.items[0];
  split.items.push_back(item);  // 5 readable samples
  auto o = options();
  o.shuffle = true;
  o.batch_size = 1;
  o.world = 2;
  o.rank = 0;
  VideoLoader r0(split, o);
  o.rank = 1;
  VideoLoader r1(split, o);
  o.world = 1;
  o.rank = 0;
  o.batch_size = 2;
  VideoLoader one(split, o);
  EXPECT_EQ(r0.batches_per_epoch(), 2);  // 4 of the 5 per epoch: the fifth is dropped on both
  EXPECT_EQ(r1.batches_per_epoch(), 2);
  std::vector<std::vector<int64_t>> epochs;
  for (int e = 0; e < 3; ++e) {
    std::vector<int64_t> seen;
    for (int b = 0; b < 2; ++b) {
      auto a = r0.next(), c = r1.next(), both = one.next();
      std::vector<int64_t> ranks = {a.ids[0], c.ids[0]};
      EXPECT_EQ(ranks, both.ids) << "epoch " << e << " batch " << b;
      EXPECT_TRUE(torch::equal(torch::cat({a.frames, c.frames}), both.frames)) << "the augmentation follows the sample";
      seen.insert(seen.end(), ranks.begin(), ranks.end());
    }
    std::set<int64_t> distinct(seen.begin(), seen.end());
    EXPECT_EQ(distinct.size(), 4u) << "each kept sample once per epoch";
    epochs.push_back(seen);
  }
  EXPECT_TRUE(epochs[0] != epochs[1] || epochs[1] != epochs[2]) << "the order changes with the epoch";
  o.batch_size = 1;
  o.world = 2;
  o.rank = 1;
  VideoLoader again(split, o);  // a resumed rank continues where its position says
  again.restore(r1.position());
  auto resumed = again.next();
  EXPECT_EQ(resumed.ids, r1.next().ids);
  o.rank = 2;
  EXPECT_THROW(VideoLoader(split, o), DatasetError);
  o.rank = 0;
  o.batch_size = 3;  // 6 > 5 samples
  EXPECT_THROW(VideoLoader(split, o), DatasetError);
}
