// The threaded loader on real (ffmpeg-generated) videos: fixed batch shapes when a video is
// corrupt (skipped, counted, replaced), the same batches for the same seed, disjoint shards.
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

TEST(Loader, ShardsAreDisjointAndBadOptionsAreErrors) {
  auto split = load_folder(make_folder_dataset());
  auto o = options();
  o.batch_size = 2;
  o.world = 2;
  o.rank = 0;
  VideoLoader r0(split, o);
  o.rank = 1;
  VideoLoader r1(split, o);
  EXPECT_EQ(r0.batches_per_epoch(), 1);  // 3 items on rank 0, 2 on rank 1
  EXPECT_EQ(r1.batches_per_epoch(), 1);
  o.rank = 2;
  EXPECT_THROW(VideoLoader(split, o), DatasetError);
  o.rank = 0;
  o.world = 1;
  o.batch_size = 9;
  EXPECT_THROW(VideoLoader(split, o), DatasetError);
}
