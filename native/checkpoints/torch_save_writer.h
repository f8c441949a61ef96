// Writes a torch.save file (the zip format of PyTorch >= 1.6) that torch.load(path,
// weights_only=True) reads: archive/data.pkl (pickle protocol 2, pickle_writer.h), archive/data/N
// (each tensor's bytes, little-endian), archive/byteorder, archive/version. Written to a
// temporary file and renamed (zip_writer.h).
#pragma once

#include <string>

#include "checkpoints/pickle_writer.h"

namespace gd::checkpoints {

void WriteTorchSave(const std::string& path, const SaveValue& value, bool force_zip64 = false);

}  // namespace gd::checkpoints
