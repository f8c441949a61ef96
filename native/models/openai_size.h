// What an openai network will hold, counted from its options before a byte is allocated: a flag
// such as num_channels 8192 or num_res_blocks 1e6 otherwise allocates until the process dies.
#pragma once

#include <cstdint>

#include "models/openai_encoder.h"
#include "models/openai_unet.h"

namespace gd::openai {

// Parameter counts of the networks these options build (as doubles: a hostile option set can
// exceed 2^63), following make_unet_model / make_encoder_unet_model exactly.
double unet_parameter_count(const UNetModelOptions& o);
double encoder_parameter_count(const EncoderUNetModelOptions& o);

// Throws (naming the count and the bytes) when `count` float32 parameters exceed this
// machine's physical memory.
void check_fits_in_memory(double count, const char* net);

}  // namespace gd::openai
