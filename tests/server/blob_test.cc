// The blob codec (server/store/blob.h), record ids and page tokens
// (server/store/ids.h): exact round trips, the documented byte layout, and
// every kind of damage a stored blob can suffer coming back as DataLoss.
#include "server/store/blob.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "server/store/ids.h"

namespace agt::server {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

uint64_t Bits(double x) { return std::bit_cast<uint64_t>(x); }

// Doubles whose bit patterns a careless codec would change.
std::vector<double> AwkwardDoubles() {
  return {0.0,
          -0.0,
          1.0,
          -1.5,
          std::numeric_limits<double>::denorm_min(),
          -std::numeric_limits<double>::denorm_min(),
          std::numeric_limits<double>::min(),
          std::numeric_limits<double>::max(),
          std::numeric_limits<double>::lowest(),
          kInf,
          -kInf,
          std::bit_cast<double>(uint64_t{0x7ff8000000000123}),  // NaN with a payload
          0.1,
          1e-310};
}

Vector AwkwardVector() {
  const std::vector<double> v = AwkwardDoubles();
  return Eigen::Map<const Vector>(v.data(), static_cast<Index>(v.size()));
}

void ExpectSameBits(const Vector& a, const Vector& b) {
  ASSERT_EQ(a.size(), b.size());
  for (Index i = 0; i < a.size(); ++i) EXPECT_EQ(Bits(a[i]), Bits(b[i])) << "index " << i;
}

// Rewrites the length field and the checksum after a deliberate edit, so the
// edit reaches the content checks instead of failing the checksum.
std::string Reseal(std::string blob_without_checksum) {
  const uint64_t total = blob_without_checksum.size() + 32;
  for (int i = 0; i < 8; ++i) {
    blob_without_checksum[8 + i] = static_cast<char>((total >> (8 * i)) & 0xff);
  }
  return blob_without_checksum + Sha256(blob_without_checksum);
}

std::string WithoutChecksum(const std::string& blob) { return blob.substr(0, blob.size() - 32); }

void PutU64At(std::string* s, size_t offset, uint64_t v) {
  for (int i = 0; i < 8; ++i) (*s)[offset + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

void ExpectDataLoss(const absl::Status& status, const std::string& needle) {
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), needle))
      << "message \"" << status.message() << "\" lacks \"" << needle << "\"";
}

agt::TrainState SampleState() {
  agt::TrainState s;
  s.step = (int64_t{1} << 40) + 7;
  s.nominal = AwkwardVector();
  const Vector lower = -AwkwardVector().cwiseAbs();
  for (int b = 0; b < 3; ++b) {
    ParameterBox box{lower, AwkwardVector().cwiseAbs()};
    box.lower[b] = -kInf;
    box.upper[b + 1] = kInf;
    s.boxes.push_back(box);
  }
  s.velocity_nominal = Vector::Constant(14, -0.0);
  s.velocity_lower = {Vector::Constant(14, 1e-320), Vector::Constant(14, -2.0), Vector()};
  s.velocity_upper = {Vector::LinSpaced(14, -1.0, 1.0), Vector::Zero(14), Vector::Ones(14)};
  return s;
}

void ExpectSameState(const agt::TrainState& a, const agt::TrainState& b) {
  EXPECT_EQ(a.step, b.step);
  ExpectSameBits(a.nominal, b.nominal);
  ASSERT_EQ(a.boxes.size(), b.boxes.size());
  for (size_t i = 0; i < a.boxes.size(); ++i) {
    ExpectSameBits(a.boxes[i].lower, b.boxes[i].lower);
    ExpectSameBits(a.boxes[i].upper, b.boxes[i].upper);
  }
  ExpectSameBits(a.velocity_nominal, b.velocity_nominal);
  ASSERT_EQ(a.velocity_lower.size(), b.velocity_lower.size());
  for (size_t i = 0; i < a.velocity_lower.size(); ++i) {
    ExpectSameBits(a.velocity_lower[i], b.velocity_lower[i]);
  }
  ASSERT_EQ(a.velocity_upper.size(), b.velocity_upper.size());
  for (size_t i = 0; i < a.velocity_upper.size(); ++i) {
    ExpectSameBits(a.velocity_upper[i], b.velocity_upper[i]);
  }
}

// ---- layout

TEST(BlobLayoutTest, VectorOfOneIsTheDocumentedLittleEndianBytes) {
  const std::string blob = EncodeVector(Vector::Constant(1, 1.0));
  // header 16 + dtype 1 + rank 1 + one dimension 8 + one value 8 + checksum 32
  ASSERT_EQ(blob.size(), 66u);
  const std::string expected_prefix = std::string("AGTT") +
                                      std::string("\x01\x00\x00\x00", 4) +     // v1, reserved
                                      std::string("\x42\0\0\0\0\0\0\0", 8) +   // length 66
                                      std::string("\x01\x01", 2) +             // f64, rank 1
                                      std::string("\x01\0\0\0\0\0\0\0", 8) +   // dim 1
                                      std::string("\0\0\0\0\0\0\xf0\x3f", 8);  // 1.0
  EXPECT_EQ(blob.substr(0, 34), expected_prefix);
  EXPECT_EQ(blob.substr(34), Sha256(blob.substr(0, 34)));
}

TEST(BlobLayoutTest, Sha256MatchesTheStandardTestVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256HexOfParts({"a", "", "bc"}), Sha256Hex("abc"));
  EXPECT_EQ(Sha256("x").size(), 32u);
}

// ---- round trips

TEST(BlobRoundTripTest, VectorKeepsEveryBit) {
  const Vector v = AwkwardVector();
  absl::StatusOr<Vector> back = DecodeVector(EncodeVector(v));
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameBits(v, *back);
}

TEST(BlobRoundTripTest, MatrixKeepsShapeOrderAndBits) {
  Matrix m(3, 5);
  const std::vector<double> awkward = AwkwardDoubles();
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = awkward[i % awkward.size()];
  m(2, 4) = -0.0;
  absl::StatusOr<Matrix> back = DecodeMatrix(EncodeMatrix(m));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->rows(), 3);
  ASSERT_EQ(back->cols(), 5);
  for (Index r = 0; r < 3; ++r) {
    for (Index c = 0; c < 5; ++c) EXPECT_EQ(Bits(m(r, c)), Bits((*back)(r, c))) << r << "," << c;
  }
}

TEST(BlobRoundTripTest, EmptyTensorsKeepTheirShape) {
  absl::StatusOr<Vector> v = DecodeVector(EncodeVector(Vector()));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->size(), 0);
  for (auto [rows, cols] : {std::pair<int, int>{0, 7}, {4, 0}, {0, 0}}) {
    absl::StatusOr<Matrix> m = DecodeMatrix(EncodeMatrix(Matrix(rows, cols)));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->rows(), rows);
    EXPECT_EQ(m->cols(), cols);
  }
  absl::StatusOr<std::vector<double>> d = DecodeDoubles(EncodeDoubles({}));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->empty());
}

TEST(BlobRoundTripTest, GenericTensorsOfEveryRank) {
  for (int rank = 0; rank <= kMaxTensorRank; ++rank) {
    Tensor t;
    size_t count = 1;
    for (int i = 0; i < rank; ++i) {
      t.shape.push_back(1 + i % 3);
      count *= 1 + i % 3;
    }
    for (size_t i = 0; i < count; ++i) t.values.push_back(static_cast<double>(i) - 0.5);
    absl::StatusOr<std::string> blob = EncodeTensor(t);
    ASSERT_TRUE(blob.ok()) << blob.status();
    absl::StatusOr<Tensor> back = DecodeTensor(*blob);
    ASSERT_TRUE(back.ok()) << "rank " << rank << ": " << back.status();
    EXPECT_EQ(back->shape, t.shape);
    EXPECT_EQ(back->values, t.values);
  }
}

TEST(BlobRoundTripTest, EncodeTensorRefusesInconsistentShapes) {
  EXPECT_EQ(EncodeTensor({{2, 3}, std::vector<double>(5)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeTensor({{-1}, {}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeTensor({std::vector<int64_t>(kMaxTensorRank + 1, 1), {1.0}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A product that overflows 64 bits must not wrap around to a match.
  EXPECT_EQ(EncodeTensor({{int64_t{1} << 32, int64_t{1} << 32}, {}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BlobRoundTripTest, TrainStateKeepsEveryFieldAndBit) {
  const agt::TrainState state = SampleState();
  absl::StatusOr<agt::TrainState> back = DecodeTrainState(EncodeTrainState(state));
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameState(state, *back);
}

TEST(BlobRoundTripTest, TrainStateWithoutBoxesOrVelocities) {
  agt::TrainState state;
  state.nominal = Vector::LinSpaced(5, 0.0, 1.0);
  absl::StatusOr<agt::TrainState> back = DecodeTrainState(EncodeTrainState(state));
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameState(state, *back);
  EXPECT_EQ(back->velocity_nominal.size(), 0);
}

TEST(BlobRoundTripTest, ModelSpec) {
  const ModelSpec spec = ModelSpec::Mlp({64, 32, 10});
  absl::StatusOr<ModelSpec> back = DecodeModelSpec(*EncodeModelSpec(spec));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->layers.size(), spec.layers.size());
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    EXPECT_EQ(back->layers[i].kind, spec.layers[i].kind) << i;
    EXPECT_EQ(back->layers[i].in, spec.layers[i].in) << i;
    EXPECT_EQ(back->layers[i].out, spec.layers[i].out) << i;
  }
  EXPECT_EQ(back->Describe(), spec.Describe());
}

// A conv model with a frozen conv prefix: every kind of the core, padding
// and strides that differ per axis, and frozen parameters with awkward bits.
ModelSpec ConvSpec() {
  agt::Conv2dParams frozen_conv;
  frozen_conv.in_channels = 2;
  frozen_conv.out_channels = 3;
  frozen_conv.kernel_h = 3;
  frozen_conv.kernel_w = 2;
  frozen_conv.stride_h = 1;
  frozen_conv.stride_w = 2;
  frozen_conv.pad_h = 1;
  frozen_conv.pad_w = 0;
  agt::Conv2dParams conv;
  conv.in_channels = 3;
  conv.out_channels = 2;
  conv.kernel_h = conv.kernel_w = 2;
  ModelSpec spec;
  spec.input_shape = agt::Shape::Image(2, 5, 6);
  spec.frozen.layers = {agt::LayerSpec::Conv2d(frozen_conv), agt::LayerSpec::Relu()};
  // [2, 5, 6] -> [3, 5, 3] -> conv 2@2x2 -> [2, 4, 2] -> flatten 16.
  spec.frozen.parameters = Vector::LinSpaced(3 * 2 * 3 * 2 + 3, -1.0, 1.0);
  spec.frozen.parameters[0] = -0.0;
  spec.frozen.parameters[1] = std::numeric_limits<double>::denorm_min();
  spec.layers = {agt::LayerSpec::Conv2d(conv), agt::LayerSpec::Relu(), agt::LayerSpec::Flatten(),
                 agt::LayerSpec::Dense(16, 4), agt::LayerSpec::Relu(), agt::LayerSpec::Dense(4, 3)};
  return spec;
}

TEST(BlobRoundTripTest, ConvModelSpecWithFrozenPrefixRoundTripsExactly) {
  const ModelSpec spec = ConvSpec();
  ASSERT_TRUE(spec.Validate().ok()) << spec.Validate();
  absl::StatusOr<std::string> blob = EncodeModelSpec(spec);
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(static_cast<unsigned char>((*blob)[4]), kModelSpecFormatVersion);
  absl::StatusOr<ModelSpec> back = DecodeModelSpec(*blob);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->input_shape, spec.input_shape);
  EXPECT_EQ(back->layers, spec.layers);
  EXPECT_EQ(back->frozen.layers, spec.frozen.layers);
  ExpectSameBits(back->frozen.parameters, spec.frozen.parameters);
  EXPECT_TRUE(back->Validate().ok()) << back->Validate();
  EXPECT_EQ(back->Describe(), spec.Describe());
  // A flat input shape stays explicit, an absent one absent.
  ModelSpec flat = ModelSpec::Mlp({3, 4, 1});
  flat.input_shape = agt::Shape::Flat(3);
  EXPECT_EQ(DecodeModelSpec(*EncodeModelSpec(flat))->input_shape, agt::Shape::Flat(3));
  EXPECT_TRUE(DecodeModelSpec(*EncodeModelSpec(ModelSpec::Mlp({3, 1})))->input_shape.empty());
}

TEST(BlobRoundTripTest, VersionOneModelSpecBlobsStillDecode) {
  // Written as the server before version 2 did: count, then kind/in/out.
  std::string v1("AGTM\x01\0\0\0", 8);
  v1 += std::string(8, '\0');  // length, set by Reseal
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) v1.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  u32(3);
  v1.push_back(1), u32(5), u32(7);  // dense 5->7
  v1.push_back(2), u32(0), u32(0);  // relu
  v1.push_back(1), u32(7), u32(2);  // dense 7->2
  absl::StatusOr<ModelSpec> back = DecodeModelSpec(Reseal(v1));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->layers, ModelSpec::Mlp({5, 7, 2}).layers);
  EXPECT_TRUE(back->input_shape.empty());
  EXPECT_TRUE(back->frozen.empty());
  // Conv kinds never existed in version 1.
  std::string bad = v1;
  bad[20] = 3;
  ExpectDataLoss(DecodeModelSpec(Reseal(bad)).status(), "unknown kind 3 of layer 0");
  // Versions past 2 are unknown.
  bad = v1;
  bad[4] = 3;
  ExpectDataLoss(DecodeModelSpec(Reseal(bad)).status(), "unknown format version 3");
}

TEST(BlobRoundTripTest, ModelSpecsTheFormatCannotHoldAreRefusedNotMisencoded) {
  ModelSpec negative = ConvSpec();
  negative.layers[0].conv.pad_h = -1;
  EXPECT_EQ(EncodeModelSpec(negative).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeModelSpec(negative).status().message(), "layers[0]: negative hyper-parameter -1");
  ModelSpec rank4 = ConvSpec();
  rank4.input_shape.dims = {1, 2, 5, 6};
  EXPECT_EQ(EncodeModelSpec(rank4).status().code(), absl::StatusCode::kInvalidArgument);
}

// ---- damage

TEST(BlobDamageTest, EveryTruncationIsDataLoss) {
  const std::string blob = EncodeVector(AwkwardVector());
  for (size_t n = 0; n < blob.size(); ++n) {
    ExpectDataLoss(DecodeVector(blob.substr(0, n)).status(), "truncated");
  }
  const std::string state = EncodeTrainState(SampleState());
  for (size_t n = 0; n < state.size(); n += 7) {
    ExpectDataLoss(DecodeTrainState(state.substr(0, n)).status(), "truncated");
  }
}

TEST(BlobDamageTest, TrailingBytesAreDataLoss) {
  ExpectDataLoss(DecodeVector(EncodeVector(AwkwardVector()) + "x").status(), "length mismatch");
}

TEST(BlobDamageTest, EveryFlippedBitIsDataLoss) {
  const std::string blob = EncodeVector(Vector::LinSpaced(4, -1.0, 1.0));
  for (size_t i = 0; i < blob.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = blob;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      const absl::Status status = DecodeVector(bad).status();
      EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(BlobDamageTest, FlippedPayloadByteIsAChecksumMismatch) {
  std::string blob = EncodeMatrix(Matrix::Ones(2, 2));
  blob[30] ^= 0x01;
  ExpectDataLoss(DecodeMatrix(blob).status(), "checksum mismatch");
  std::string state = EncodeTrainState(SampleState());
  state[state.size() / 2] ^= 0x40;
  ExpectDataLoss(DecodeTrainState(state).status(), "checksum mismatch");
  std::string spec = *EncodeModelSpec(ModelSpec::Mlp({3, 4, 2}));
  spec[20] ^= 0x02;
  ExpectDataLoss(DecodeModelSpec(spec).status(), "checksum mismatch");
}

TEST(BlobDamageTest, WrongMagicIsNamed) {
  std::string blob = EncodeVector(AwkwardVector());
  blob[0] = 'X';
  ExpectDataLoss(DecodeVector(blob).status(), "bad magic");
  // A blob of one kind is not accepted as another.
  ExpectDataLoss(DecodeTrainState(EncodeVector(AwkwardVector())).status(), "bad magic");
  ExpectDataLoss(DecodeVector(EncodeTrainState(SampleState())).status(), "bad magic");
  ExpectDataLoss(DecodeModelSpec(EncodeVector(AwkwardVector())).status(), "bad magic");
}

TEST(BlobDamageTest, UnknownVersionIsNamed) {
  std::string blob = WithoutChecksum(EncodeVector(AwkwardVector()));
  blob[4] = 2;
  ExpectDataLoss(DecodeVector(Reseal(blob)).status(), "unknown format version 2");
  blob[4] = 1;
  blob[6] = 1;  // reserved
  ExpectDataLoss(DecodeVector(Reseal(blob)).status(), "reserved");
}

TEST(BlobDamageTest, ShapeThatDisagreesWithThePayloadIsDataLoss) {
  // Vector of 4: dimension at offset 18.
  const std::string good = WithoutChecksum(EncodeVector(Vector::Ones(4)));
  for (uint64_t dim : {uint64_t{3}, uint64_t{5}, uint64_t{0}, uint64_t{1} << 61}) {
    std::string bad = good;
    PutU64At(&bad, 18, dim);
    ExpectDataLoss(DecodeVector(Reseal(bad)).status(), "shape/size mismatch");
  }
  std::string negative = good;
  PutU64At(&negative, 18, uint64_t{1} << 63);
  ExpectDataLoss(DecodeVector(Reseal(negative)).status(), "too large");
}

TEST(BlobDamageTest, HugeShapesDoNotOverflowOrAllocate) {
  // A 2x2 matrix relabelled as 2^40 x 2^40: the product overflows 64 bits
  // when multiplied by 8 and must be refused, not wrapped.
  std::string bad = WithoutChecksum(EncodeMatrix(Matrix::Ones(2, 2)));
  PutU64At(&bad, 18, uint64_t{1} << 40);
  PutU64At(&bad, 26, uint64_t{1} << 40);
  ExpectDataLoss(DecodeMatrix(Reseal(bad)).status(), "shape/size mismatch");
}

TEST(BlobDamageTest, UnknownDtypeAndExcessiveRankAreDataLoss) {
  std::string bad = WithoutChecksum(EncodeVector(Vector::Ones(2)));
  bad[16] = 2;
  ExpectDataLoss(DecodeVector(Reseal(bad)).status(), "unknown dtype 2");
  bad[16] = 1;
  bad[17] = kMaxTensorRank + 1;
  ExpectDataLoss(DecodeTensor(Reseal(bad)).status(), "rank");
}

TEST(BlobDamageTest, WrongRankForTheRequestedTypeIsDataLoss) {
  ExpectDataLoss(DecodeVector(EncodeMatrix(Matrix::Ones(2, 2))).status(), "rank 2");
  ExpectDataLoss(DecodeMatrix(EncodeVector(Vector::Ones(2))).status(), "rank 1");
  ExpectDataLoss(DecodeDoubles(EncodeMatrix(Matrix::Ones(1, 1))).status(), "rank 2");
}

TEST(BlobDamageTest, TrainStateCountsThatLieAreDataLoss) {
  const std::string good = WithoutChecksum(EncodeTrainState(SampleState()));
  // num_boxes at offset 24 (after the 16-byte header and the 8-byte step).
  for (uint32_t boxes : {0u, 2u, 4u, 0xffffffffu}) {
    std::string bad = good;
    for (int i = 0; i < 4; ++i) bad[24 + i] = static_cast<char>((boxes >> (8 * i)) & 0xff);
    ExpectDataLoss(DecodeTrainState(Reseal(bad)).status(), "shape/size mismatch");
  }
  // Extra bytes inside a correctly sealed envelope.
  ExpectDataLoss(DecodeTrainState(Reseal(good + std::string(3, '\0'))).status(),
                 "shape/size mismatch");
}

TEST(BlobDamageTest, TruncatedConvModelSpecsAreDataLossNeverACrash) {
  const std::string good = WithoutChecksum(*EncodeModelSpec(ConvSpec()));
  // Every shorter content, resealed: each must be refused cleanly.
  for (size_t len = 16; len < good.size(); ++len) {
    absl::Status s = DecodeModelSpec(Reseal(good.substr(0, len))).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << len;
  }
  // A huge layer count.
  std::string bad = good;
  for (int i = 0; i < 4; ++i) bad[16 + 1 + 12 + i] = '\xff';
  ExpectDataLoss(DecodeModelSpec(Reseal(bad)).status(), "shape/size mismatch");
}

TEST(BlobDamageTest, UnknownLayerKindIsDataLoss) {
  std::string bad = WithoutChecksum(*EncodeModelSpec(ModelSpec::Mlp({3, 4, 2})));
  bad[21] = 9;  // kind of layer 0, after header 16 + rank 1 + count 4
  ExpectDataLoss(DecodeModelSpec(Reseal(bad)).status(), "unknown kind 9 of trained layer 0");
}

// ---- ids and page tokens

TEST(IdTest, PrefixAndTwentyLowercaseHexCharacters) {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    absl::StatusOr<std::string> id = NewRandomId(kJobIdPrefix);
    ASSERT_TRUE(id.ok()) << id.status();
    ASSERT_EQ(id->size(), 4u + kIdRandomHexChars) << *id;
    EXPECT_TRUE(absl::StartsWith(*id, "job-")) << *id;
    for (char c : id->substr(4)) {
      EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << *id;
    }
    EXPECT_TRUE(seen.insert(*id).second) << "repeated id " << *id;
  }
}

TEST(IdTest, RandomBitsAreNotStuck) {
  // Every hex position takes several values over 200 ids; a counter or a
  // clock-based id would keep its leading positions fixed.
  std::vector<std::set<char>> values(kIdRandomHexChars);
  for (int i = 0; i < 200; ++i) {
    absl::StatusOr<std::string> id = NewRandomId(kDatasetIdPrefix);
    ASSERT_TRUE(id.ok());
    for (int p = 0; p < kIdRandomHexChars; ++p) values[p].insert((*id)[3 + p]);
  }
  for (int p = 0; p < kIdRandomHexChars; ++p) EXPECT_GE(values[p].size(), 8u) << "position " << p;
}

TEST(PageTokenTest, RoundTripsPositions) {
  for (int64_t pos : {int64_t{0}, int64_t{1}, int64_t{255}, int64_t{1} << 40,
                      std::numeric_limits<int64_t>::max()}) {
    const std::string token = EncodePageToken(PageKind::kJobs, pos);
    absl::StatusOr<int64_t> back = DecodePageToken(PageKind::kJobs, token);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, pos);
  }
  absl::StatusOr<int64_t> start = DecodePageToken(PageKind::kModels, "");
  ASSERT_TRUE(start.ok());
  EXPECT_EQ(*start, 0);
}

TEST(PageTokenTest, MalformedOrForeignTokensAreInvalidArgument) {
  const std::string jobs = EncodePageToken(PageKind::kJobs, 17);
  const std::vector<std::string> bad = {"x",
                                        "!!!!",
                                        "AAAA",
                                        jobs + "A",
                                        jobs.substr(1),
                                        std::string(500, 'A'),
                                        "17",
                                        std::string("\0\1", 2)};
  for (const std::string& token : bad) {
    const absl::Status status = DecodePageToken(PageKind::kJobs, token).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << token;
    EXPECT_TRUE(absl::StrContains(status.message(), "page_token")) << status;
  }
  // A token of another listing.
  EXPECT_EQ(DecodePageToken(PageKind::kDatasets, jobs).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace agt::server
