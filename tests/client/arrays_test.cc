// client/lib/arrays.h: IDX, .npy and .npz files written byte by byte here
// (so the expected values come from the test, not the parser), and one
// precise error per way a file can be wrong. Gzip and deflate data are made
// with zlib.
#include "client/lib/arrays.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace agt::client {
namespace {

using ::testing::HasSubstr;

std::string Big32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string Little(uint64_t v, int bytes) {
  std::string s;
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

// An IDX uint8 file of `dims` with values 0, 1, 2, ...
std::string IdxU8(const std::vector<uint32_t>& dims) {
  std::string s("\0\0\x08", 3);
  s.push_back(static_cast<char>(dims.size()));
  size_t count = 1;
  for (uint32_t d : dims) {
    s += Big32(d);
    count *= d;
  }
  for (size_t i = 0; i < count; ++i) s.push_back(static_cast<char>(i % 256));
  return s;
}

std::string Npy(const std::string& descr, const std::string& shape, const std::string& payload,
                const std::string& fortran = "False") {
  std::string header = absl::StrCat("{'descr': '", descr, "', 'fortran_order': ", fortran,
                                    ", 'shape': ", shape, ", }");
  while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  return absl::StrCat(std::string("\x93NUMPY\x01\x00", 8), Little(header.size(), 2), header,
                      payload);
}

std::string F64s(const std::vector<double>& v) {
  std::string s;
  for (double x : v) s += Little(std::bit_cast<uint64_t>(x), 8);
  return s;
}

std::string Deflate(const std::string& data, int window_bits) {
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  deflateInit2(&zs, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// A zip of .npy members as np.savez writes it (method 0) or
// np.savez_compressed (method 8).
std::string Zip(const std::vector<std::pair<std::string, std::string>>& members, int method) {
  std::string body, directory;
  for (const auto& [name, data] : members) {
    const uint32_t crc = crc32(0L, reinterpret_cast<const Bytef*>(data.data()), data.size());
    const std::string stored = method == 8 ? Deflate(data, -15) : data;
    const uint32_t offset = static_cast<uint32_t>(body.size());
    std::string common = absl::StrCat(Little(20, 2), Little(0, 2), Little(method, 2), Little(0, 4),
                                      Little(crc, 4), Little(stored.size(), 4),
                                      Little(data.size(), 4), Little(name.size(), 2), Little(0, 2));
    body += absl::StrCat(Little(0x04034b50, 4), common, name, stored);
    directory += absl::StrCat(Little(0x02014b50, 4), Little(20, 2), common, Little(0, 2),
                              Little(0, 2), Little(0, 2), Little(0, 4), Little(offset, 4), name);
  }
  return absl::StrCat(body, directory, Little(0x06054b50, 4), Little(0, 4),
                      Little(members.size(), 2), Little(members.size(), 2),
                      Little(directory.size(), 4), Little(body.size(), 4), Little(0, 2));
}

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(Idx, ReadsImagesAndLabelsInCOrder) {
  absl::StatusOr<NumericArray> a = ParseIdx(IdxU8({2, 3, 4}), "img");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3, 4}));
  ASSERT_EQ(a->values.size(), 24u);
  EXPECT_EQ(a->values[23], 23.0);
  EXPECT_TRUE(a->unsigned_bytes);
  // float64 big-endian.
  std::string f("\0\0\x0e\x01", 4);
  f += Big32(2);
  for (double v : {1.5, -2.25}) {
    const uint64_t bits = std::bit_cast<uint64_t>(v);
    f += Big32(static_cast<uint32_t>(bits >> 32)) + Big32(static_cast<uint32_t>(bits));
  }
  a = ParseIdx(f, "f");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->values, (std::vector<double>{1.5, -2.25}));
  EXPECT_FALSE(a->integral);
}

TEST(Idx, WrongMagicIsRefused) {
  std::string s = IdxU8({2});
  s[0] = 1;
  EXPECT_THAT(Message(ParseIdx(s, "x.idx").status()), HasSubstr("x.idx: bad magic 0x01000801"));
}

TEST(Idx, UnknownTypeIsRefused) {
  std::string s = IdxU8({2});
  s[2] = 0x0a;
  EXPECT_THAT(Message(ParseIdx(s, "x").status()), HasSubstr("unknown IDX type 0x0a"));
}

TEST(Idx, TruncatedHeaderAndDataAreRefused) {
  EXPECT_THAT(Message(ParseIdx(std::string("\0\0", 2), "x").status()), HasSubstr("truncated"));
  const std::string s = IdxU8({3, 5});
  EXPECT_THAT(Message(ParseIdx(s.substr(0, 10), "x").status()),
              HasSubstr("truncated: the header needs 12 bytes"));
  EXPECT_THAT(Message(ParseIdx(s.substr(0, s.size() - 1), "x").status()),
              HasSubstr("truncated: shape [3, 5] needs 15 bytes of data, the file has 14"));
  EXPECT_THAT(Message(ParseIdx(s + "z", "x").status()), HasSubstr("1 bytes after the 15 values"));
}

TEST(Idx, DimensionsThatOverflowAreRefusedWithoutAllocating) {
  std::string s("\0\0\x08\x04", 4);
  for (int i = 0; i < 4; ++i) s += Big32(0xffffffffu);
  EXPECT_THAT(Message(ParseIdx(s, "x").status()), HasSubstr("holds more than 1073741824 values"));
  std::string rank("\0\0\x08\x07", 4);
  EXPECT_THAT(Message(ParseIdx(rank, "x").status()), HasSubstr("IDX rank 7"));
}

TEST(Gzip, InflatesGzipAndLeavesOtherBytesAlone) {
  const std::string plain = IdxU8({4, 4});
  absl::StatusOr<std::string> back = MaybeGunzip(Deflate(plain, 31), "g");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, plain);
  EXPECT_EQ(*MaybeGunzip(plain, "g"), plain);
  const std::string gz = Deflate(plain, 31);
  EXPECT_THAT(Message(MaybeGunzip(gz.substr(0, gz.size() / 2), "g.gz").status()),
              HasSubstr("g.gz: not a valid gzip stream"));
  EXPECT_THAT(Message(MaybeGunzip(Deflate(std::string(10000, 'a'), 31), "bomb", 1000).status()),
              HasSubstr("inflates to more than 1000 bytes"));
}

TEST(Npy, ReadsLittleEndianDtypes) {
  absl::StatusOr<NumericArray> a = ParseNpy(Npy("<f8", "(2, 2)", F64s({1, 2, 3, -4.5})), "a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a->values, (std::vector<double>{1, 2, 3, -4.5}));
  a = ParseNpy(Npy("<i4", "(3,)", Little(7, 4) + Little(0xffffffff, 4) + Little(2, 4)), "a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->values, (std::vector<double>{7, -1, 2}));
  EXPECT_TRUE(a->integral);
  a = ParseNpy(Npy("|u1", "(2,)", "\x05\xff"), "a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->values, (std::vector<double>{5, 255}));
  EXPECT_TRUE(a->unsigned_bytes);
  a = ParseNpy(Npy("<f4", "(1,)", Little(std::bit_cast<uint32_t>(0.5f), 4)), "a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->values[0], 0.5);
}

TEST(Npy, WrongMagicIsRefused) {
  EXPECT_THAT(Message(ParseNpy("PK\x03\x04......", "a.npy").status()),
              HasSubstr("a.npy: bad magic: not a .npy file"));
}

TEST(Npy, FortranOrderIsRefused) {
  EXPECT_THAT(Message(ParseNpy(Npy("<f8", "(1, 1)", F64s({1}), "True"), "a").status()),
              HasSubstr("fortran_order True is not read"));
}

TEST(Npy, PicklesAndOtherDtypesAreRefused) {
  EXPECT_THAT(Message(ParseNpy(Npy("|O", "(1,)", "x"), "a").status()),
              HasSubstr("object arrays (pickles) are refused"));
  EXPECT_THAT(Message(ParseNpy(Npy(">f8", "(1,)", F64s({1})), "a").status()),
              HasSubstr("dtype '>f8' is not read"));
  EXPECT_THAT(Message(ParseNpy(Npy("<c16", "(1,)", F64s({1, 2})), "a").status()),
              HasSubstr("dtype '<c16' is not read"));
}

TEST(Npy, TruncatedAndOversizedFilesAreRefused) {
  const std::string good = Npy("<f8", "(3,)", F64s({1, 2, 3}));
  EXPECT_THAT(Message(ParseNpy(good.substr(0, good.size() - 8), "a").status()),
              HasSubstr("truncated: shape [3] needs 24 bytes of data, the file has 16"));
  EXPECT_THAT(Message(ParseNpy(good.substr(0, 40), "a").status()),
              HasSubstr("truncated: the .npy header says"));
  EXPECT_THAT(Message(ParseNpy(Npy("<f8", "(99999999999, 99999999999)", ""), "a").status()),
              HasSubstr("holds more than"));
  EXPECT_THAT(Message(ParseNpy(Npy("<f8", "(2, x)", ""), "a").status()),
              HasSubstr("bad dimension 'x'"));
  EXPECT_THAT(Message(ParseNpy(Npy("<f8", "(1,)", F64s({NAN})), "a").status()),
              HasSubstr("value 0 is nan"));
}

TEST(Npz, ReadsStoredAndDeflatedMembers) {
  for (int method : {0, 8}) {
    const std::string zip = Zip({{"x.npy", Npy("<f8", "(2, 3)", F64s({1, 2, 3, 4, 5, 6}))},
                                 {"y.npy", Npy("<i8", "(2,)", Little(1, 8) + Little(0, 8))}},
                                method);
    absl::StatusOr<std::map<std::string, NumericArray>> m = ParseNpz(zip, "d.npz");
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_EQ(m->count("x"), 1u);
    EXPECT_EQ(m->at("x").values[5], 6.0);
    EXPECT_EQ(m->at("y").values, (std::vector<double>{1, 0}));
  }
}

TEST(Npz, DamagedArchivesAreRefused) {
  const std::string zip = Zip({{"x.npy", Npy("<f8", "(1,)", F64s({1}))}}, 8);
  EXPECT_THAT(Message(ParseNpz("not a zip at all, no", "d").status()), HasSubstr("bad magic"));
  EXPECT_THAT(Message(ParseNpz(zip.substr(0, zip.size() - 30), "d").status()),
              HasSubstr("no zip end-of-directory record"));
  std::string bad_crc = zip;
  bad_crc[14] ^= 1;  // the local header's CRC is not read; the directory's is
  bad_crc[zip.find(std::string("PK\x01\x02", 4)) + 16] ^= 1;
  EXPECT_THAT(Message(ParseNpz(bad_crc, "d").status()), HasSubstr("CRC-32 mismatch"));
  const std::string pickle = Zip({{"x.npy", Npy("|O", "(1,)", "p")}}, 0);
  EXPECT_THAT(Message(ParseNpz(pickle, "d").status()), HasSubstr("pickles"));
  const std::string other = Zip({{"x.txt", "hello"}}, 0);
  EXPECT_THAT(Message(ParseNpz(other, "d").status()), HasSubstr("is not a .npy member"));
}

TEST(Parsers, RandomMutationsNeverCrash) {
  const std::vector<std::string> seeds = {IdxU8({3, 4, 4}),
                                          Npy("<f8", "(2, 2)", F64s({1, 2, 3, 4})),
                                          Zip({{"x.npy", Npy("<f4", "(2,)", Little(0, 8))}}, 8)};
  std::mt19937_64 rng(1);
  for (int round = 0; round < 3000; ++round) {
    std::string s = seeds[round % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 3) {
        case 0:
          s[rng() % s.size()] = static_cast<char>(rng());
          break;
        case 1:
          s.resize(rng() % (s.size() + 1));
          break;
        default: {
          const size_t at = rng() % (s.size() + 1);
          s = absl::StrCat(s.substr(0, at), std::string(1, static_cast<char>(rng())), s.substr(at));
        }
      }
      if (s.empty()) s.push_back('x');
    }
    (void)ParseIdx(s, "m");
    (void)ParseNpy(s, "m");
    (void)ParseNpz(s, "m");
    (void)MaybeGunzip(s, "m");
  }
}

}  // namespace
}  // namespace agt::client
