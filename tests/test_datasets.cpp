// Annotation formats from small generated trees (including malformed files), sampler index
// properties, and transform shapes and determinism.
#include <filesystem>
#include <fstream>

#include "datasets/annotations.h"
#include "datasets/samplers.h"
#include "datasets/transforms.h"
#include "tests/test_util.h"

using namespace trecvit::data;
namespace fs = std::filesystem;
using trecvit::test::temp_dir;

namespace {

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

template <typename Fn>
void expect_dataset_error(Fn fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "expected a DatasetError";
  } catch (const DatasetError& e) {
    for (auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

fs::path ssv2_tree(bool old_names) {
  fs::path root = temp_dir();
  const std::string pre = old_names ? "something-something-v2-" : "";
  write(root / (pre + "labels.json"), R"({"Moving something from left to right": "0", "Pushing something": "1"})");
  write(root / (pre + "train.json"),
        R"([{"id": "11", "label": "moving a shoe from left to right", "template": "Moving [something] from left to right", "placeholders": ["a shoe"]},
            {"id": "12", "label": "pushing a bag", "template": "Pushing [something]", "placeholders": ["a bag"]},
            {"id": "13", "label": "pushing x", "template": "Pushing [something]", "placeholders": ["x"]}])");
  write(root / (pre + "test.json"), R"([{"id": "11"}, {"id": "12"}])");
  write(root / "videos" / "11.webm", "v");
  write(root / "videos" / "12.webm", "v");
  return root;
}

}  // namespace

TEST(SSv2, BothNamingsParseAndMissingVideosAreListed) {
  for (bool old_names : {false, true}) {
    auto root = ssv2_tree(old_names);
    auto s = load_ssv2(root.string(), "train");
    ASSERT_EQ(s.class_names.size(), 2u);
    EXPECT_EQ(s.class_names[1], "Pushing something");
    ASSERT_EQ(s.items.size(), 2u);
    EXPECT_EQ(s.items[0].label, 0);
    EXPECT_EQ(s.items[1].label, 1);
    EXPECT_EQ(fs::path(s.items[1].path).filename(), "12.webm");
    ASSERT_EQ(s.missing.size(), 1u);  // id 13 has no video
    auto t = load_ssv2(root.string(), "test");
    EXPECT_EQ(t.items.size(), 2u);
    EXPECT_EQ(t.items[0].label, -1);
  }
}

TEST(SSv2, MalformedAnnotationsNameTheFileAndEntry) {
  auto root = ssv2_tree(false);
  write(root / "validation.json", R"([{"id": "11", "template": "Flying [something]"}])");
  expect_dataset_error([&] { load_ssv2(root.string(), "validation"); }, {"validation.json", "entry 0", "unknown template 'Flying something'"});
  write(root / "validation.json", R"([{"id": "11"}])");
  expect_dataset_error([&] { load_ssv2(root.string(), "validation"); }, {"validation.json", "missing field 'template'"});
  write(root / "validation.json", R"([{"id": "11", )");
  expect_dataset_error([&] { load_ssv2(root.string(), "validation"); }, {"validation.json", "invalid JSON"});
  fs::remove(root / "labels.json");
  expect_dataset_error([&] { load_ssv2(root.string(), "train"); }, {"labels.json"});
}

TEST(Kinetics, QuotedLabelsFoldersAndMissingRows) {
  fs::path root = temp_dir();
  write(root / "annotations" / "train.csv",
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "\"abseiling\",aaa,0,10,train,0\n"
        "\"playing cards, poker\",bbb,5,15,train,0\n"
        "\"air drumming\",ccc,30,40,train,0\n"
        "\"air drumming\",ddd,1,11,train,0\n");
  write(root / "train" / "abseiling" / "aaa_000000_000010.mp4", "v");
  write(root / "train" / "playing cards, poker" / "bbb_000005_000015.mp4", "v");
  write(root / "train" / "air_drumming" / "ccc_000030_000040.mp4", "v");  // spaces as '_'
  auto s = load_kinetics(root.string(), "train");
  ASSERT_EQ(s.class_names.size(), 3u);
  EXPECT_EQ(s.class_names[2], "playing cards, poker");
  ASSERT_EQ(s.items.size(), 3u);
  EXPECT_EQ(s.items[1].label, 2);
  ASSERT_EQ(s.missing.size(), 1u);
  EXPECT_EQ(s.missing[0], "ddd_000001_000011.mp4");
  write(root / "annotations" / "val.csv", "label,youtube_id,time_start,time_end,split\n\"x,y\",aaa,zero,10,val\n");
  expect_dataset_error([&] { load_kinetics(root.string(), "val"); }, {"val.csv", "line 2", "is not a time in seconds"});
  write(root / "annotations" / "test.csv", "youtube_id,time_start\naaa,0\n");
  expect_dataset_error([&] { load_kinetics(root.string(), "test"); }, {"test.csv", "time_end"});
}

TEST(Csv, ParsesQuotesAndRejectsUnterminated) {
  auto f = parse_csv_line("\"a, b\",\"say \"\"hi\"\"\",c\r", "x");
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0], "a, b");
  EXPECT_EQ(f[1], "say \"hi\"");
  EXPECT_EQ(f[2], "c");
  expect_dataset_error([] { parse_csv_line("\"open,x", "list.csv: line 3"); }, {"list.csv: line 3", "unterminated"});
}

TEST(FolderAndCsvList, ClassesAndPaths) {
  fs::path root = temp_dir();
  write(root / "b_class" / "x.mp4", "v");
  write(root / "a_class" / "y.webm", "v");
  write(root / "a_class" / "notes.txt", "not a video");
  auto s = load_folder(root.string());
  ASSERT_EQ(s.class_names, (std::vector<std::string>{"a_class", "b_class"}));
  ASSERT_EQ(s.items.size(), 2u);
  EXPECT_EQ(s.items[0].label, 0);
  write(root / "list.csv", "path,label\na_class/y.webm,walk\nb_class/x.mp4,run\nnope.mp4,run\n");
  auto c = load_csv_list((root / "list.csv").string());
  EXPECT_EQ(c.class_names, (std::vector<std::string>{"run", "walk"}));
  ASSERT_EQ(c.items.size(), 2u);
  EXPECT_EQ(c.items[0].label, 1);
  EXPECT_EQ(c.missing.size(), 1u);
  write(root / "bad.csv", "a.mp4,1,extra\n");
  expect_dataset_error([&] { load_csv_list((root / "bad.csv").string()); }, {"bad.csv", "line 1", "path,label"});
  expect_dataset_error([&] { load_folder((root / "none").string()); }, {"not a directory"});
}

TEST(MirrorLabels, SwapsDirectionWordsOnlyWhenTheMirrorIsAClass) {
  const std::vector<std::string> names = {"Moving something from left to right", "Moving something from right to left",
                                          "Rotating something clockwise", "Rotating something counterclockwise",
                                          "Turning the camera left while filming something", "Pushing something",
                                          "Putting something to the left of something"};
  EXPECT_EQ(mirror_label_map(names), (std::vector<int64_t>{1, 0, 3, 2, 4, 5, 6}));  // no "camera right" class: kept
  // Other spellings of counterclockwise, and case, still pair up.
  EXPECT_EQ(mirror_label_map({"Turning Clockwise", "turning anticlockwise", "Spin counter-clockwise", "spin clockwise"}),
            (std::vector<int64_t>{1, 0, 3, 2}));
}

TEST(Samplers, IndexProperties) {
  std::mt19937_64 rng(1);
  ClipSpec spec{8, 2, ShortVideoPolicy::kRepeatLast};
  for (int trial = 0; trial < 50; ++trial) {
    auto idx = random_clip(40, spec, rng);
    ASSERT_EQ(idx.size(), 8u);
    for (size_t i = 1; i < idx.size(); ++i) EXPECT_EQ(idx[i] - idx[i - 1], 2);
    EXPECT_LT(idx.back(), 40);
  }
  EXPECT_EQ(clip_at(5, 0, spec), (std::vector<int64_t>{0, 2, 4, 4, 4, 4, 4, 4}));
  spec.policy = ShortVideoPolicy::kLoop;
  EXPECT_EQ(clip_at(5, 0, spec), (std::vector<int64_t>{0, 2, 4, 1, 3, 0, 2, 4}));
  auto seg = uniform_segments(100, 4, false, nullptr);
  EXPECT_EQ(seg, (std::vector<int64_t>{12, 37, 62, 87}));
  for (int trial = 0; trial < 20; ++trial) {
    auto r = uniform_segments(100, 4, true, &rng);
    for (int s = 0; s < 4; ++s) EXPECT_TRUE(r[s] >= s * 25 && r[s] < (s + 1) * 25) << r[s];
  }
  auto views = temporal_views(40, ClipSpec{8, 2}, 3);
  ASSERT_EQ(views.size(), 3u);
  EXPECT_EQ(views[0].front(), 0);
  EXPECT_EQ(views[2].back(), 39);
  EXPECT_THROW(parse_short_video_policy("wrap"), std::invalid_argument);
}

TEST(Transforms, ShapesAndDeterminism) {
  torch::manual_seed(0);
  auto clip = torch::randint(0, 256, {4, 30, 50, 3}, torch::kByte);
  EXPECT_EQ(short_side_resize(clip, 15).sizes(), (std::vector<int64_t>{4, 15, 25, 3}));
  EXPECT_EQ(center_crop(clip, 20, 20).sizes(), (std::vector<int64_t>{4, 20, 20, 3}));
  auto three = three_crop(clip, 30);
  ASSERT_EQ(three.size(), 3u);
  EXPECT_TRUE(torch::equal(three[0], clip.narrow(2, 0, 30)));
  EXPECT_TRUE(torch::equal(three[2], clip.narrow(2, 20, 30)));
  std::mt19937_64 a(7), b(7);
  auto x = random_resized_crop(clip, 16, 16, a);
  auto y = random_resized_crop(clip, 16, 16, b);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{4, 16, 16, 3}));
  EXPECT_TRUE(torch::equal(x, y));
  EXPECT_TRUE(torch::equal(color_jitter(clip, 0.4, 0.4, 0.4, a), color_jitter(clip, 0.4, 0.4, 0.4, b)));
  EXPECT_TRUE(torch::equal(horizontal_flip(clip).select(2, 0), clip.select(2, 49)));
  EXPECT_THROW(crop(clip, 20, 0, 20, 10), c10::Error);
}
