// What each rank is about to do, exchanged before it does it. Gloo aborts the process when
// ranks pair collectives of different sizes, and silently mixes values when they differ in
// dtype or reduce op; so every collective is preceded by an all-gather of a fixed-size
// signature (kind, op or src, dtype, shape), and runs only when all ranks' signatures agree.
// Tensor lists (the trainer's buckets) travel as one summary, with a second exchange of the
// full list only when the summaries differ, to name the first tensor that does.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace gd::dist {

enum class CollectiveKind : int64_t {
  kAllReduce = 1, kBroadcast, kAllGather, kBarrier, kBroadcastList, kAverageList, kValues
};

// The fixed-size words exchanged by every rank.
constexpr int64_t kSignatureWords = 32;

struct Signature {
  std::vector<int64_t> words;  // kSignatureWords of them
  // For lists and values: the full description exchanged when summaries differ.
  std::vector<int64_t> detail;
  std::vector<std::string> names;  // values' names, to say which differs
};

// `arg`: the reduce op's index (allReduce) or the source rank (broadcast), else 0.
Signature tensor_signature(CollectiveKind kind, int64_t arg, const at::Tensor& t);
Signature barrier_signature();
Signature list_signature(CollectiveKind kind, int64_t arg, const std::vector<at::Tensor>& tensors);
// Named numbers that every rank must have alike (a run's options).
Signature values_signature(const std::vector<std::pair<std::string, double>>& values);

// How many detail words a list's or values' signature announces.
int64_t detail_length(const std::vector<int64_t>& words);

// The first rank whose words differ from rank 0's, or -1 when all agree.
int first_disagreeing(const std::vector<std::vector<int64_t>>& words);

// "allReduce('sum') of float32 [2, 3]"; `op_names` indexes the reduce ops.
std::string describe_signature(const std::vector<int64_t>& words, const std::vector<std::string>& op_names);

// Where two ranks' lists (detail words) first differ: "tensor 3 of 12: float32 [8, 3] on
// rank 0, float32 [16, 3] on rank 1".
std::string describe_list_difference(const std::vector<int64_t>& a, int rank_a, const std::vector<int64_t>& b, int rank_b);
// Where two ranks' named values first differ: "batchSize: 4 on rank 0, 8 on rank 1".
std::string describe_values_difference(const std::vector<std::string>& names, const std::vector<int64_t>& a, int rank_a, const std::vector<int64_t>& b, int rank_b);

}  // namespace gd::dist
