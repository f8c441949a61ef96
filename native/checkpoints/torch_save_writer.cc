#include "checkpoints/torch_save_writer.h"

#include <vector>

#include "checkpoints/zip_writer.h"

namespace gd::checkpoints {

void WriteTorchSave(const std::string& path, const SaveValue& value, bool force_zip64) {
  std::vector<at::Tensor> storages;
  const std::string pickle = PickleForTorchSave(value, &storages);
  static const std::string kByteorder = "little", kVersion = "3\n";
  std::vector<ZipSource> entries{{"archive/data.pkl", pickle.data(), pickle.size()},
                                 {"archive/byteorder", kByteorder.data(), kByteorder.size()}};
  for (size_t i = 0; i < storages.size(); ++i) {
    entries.push_back({"archive/data/" + std::to_string(i), storages[i].data_ptr(), storages[i].nbytes()});
  }
  entries.push_back({"archive/version", kVersion.data(), kVersion.size()});
  WriteZip(path, entries, force_zip64);
}

}  // namespace gd::checkpoints
