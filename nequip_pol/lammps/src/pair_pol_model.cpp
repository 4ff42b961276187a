/* ----------------------------------------------------------------------
   nequip_pol: common base of pair styles allegro/pol and nequip/pol.
   Loading the compiled model (an AOTInductor package): its metadata (inputs, outputs,
   species, cutoff, polarization offset), the device it runs on, the variant without Born
   charges (pair_style ... noborn FILE) and the compile targets named in the error messages.
------------------------------------------------------------------------- */

#include "pair_pol_base.h"
#include "pair_pol_util.h"
#include "pol_zip_check.h"

#include "comm.h"
#include "error.h"
#include "utils.h"

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

using namespace LAMMPS_NS;

// written by torch's AOTInductor into every package: the device it was compiled for
static const char *META_DEVICE = "AOTI_DEVICE_KEY";

// the device a package was compiled for (nequip's own loader reads the same key); "cpu" where
// the key is missing
static std::string package_device(const std::unordered_map<std::string, std::string> &meta)
{
  auto it = meta.find(META_DEVICE);
  return (it == meta.end() || it->second.empty()) ? std::string("cpu") : it->second;
}

int PairPolBase::find_output(const std::string &key) const
{
  for (size_t k = 0; k < output_keys.size(); k++)
    if (output_keys[k] == key) return (int) k;
  return -1;
}

void PairPolBase::load_model(const std::string &path)
{
  model_path = path;
  {
    FILE *fp = fopen(path.c_str(), "rb");
    if (!fp) error->all(FLERR, "pair_coeff {}: cannot open model file {}", style_name, path);
    fclose(fp);
  }
  if (!utils::strmatch(path, "\\.pt2$"))
    error->all(FLERR,
               "pair_coeff {}: model file {} is not an AOTInductor package (*.nequip.pt2); compile "
               "it with: nequip-compile MODEL OUT.nequip.pt2 --mode aotinductor --device cpu "
               "--target {}",
               style_name, path, target_name(false, false));
  // a package cut short or with changed bytes: say so (torch's reader checks no CRC)
  {
    std::string problem = nequip_pol::pol_zip_problem(path);
    if (!problem.empty())
      error->all(FLERR, "pair_coeff {}: model file {} is {}", style_name, path, problem);
  }

  // the package's metadata first (cheap): inputs, outputs, species, cutoff
  try {
    metadata = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path, "model");
  } catch (std::exception &e) {
    error->all(FLERR, "pair_coeff {}: cannot read the AOTInductor package {}: {}", style_name,
               path, first_line(e.what()));
  }
  auto need = [&](const char *key) -> std::string {
    auto it = metadata.find(key);
    if (it == metadata.end())
      error->all(FLERR,
                 "pair_coeff {}: model {} lacks metadata '{}': not a package written by "
                 "nequip-compile (nequip >= 0.19, --mode aotinductor)",
                 style_name, path, key);
    return it->second;
  };
  input_keys = split_words(need(META_INPUTS));
  output_keys = split_words(need(META_OUTPUTS));
  model_type_names = split_words(need("type_names"));
  r_max = utils::numeric(FLERR, need("r_max"), false, lmp);
  std::string dtype = need("model_dtype");
  if (dtype != "float64" && dtype != "float32")
    error->all(FLERR, "pair_coeff {}: model {} has unsupported model_dtype {}", style_name, path,
               dtype);
  if (metadata.count("per_edge_type_cutoff") && !metadata["per_edge_type_cutoff"].empty())
    if (comm->me == 0)
      error->warning(FLERR,
                     "pair {}: model has per-edge-type cutoffs; edges are built with r_max = {} "
                     "and the model's own cutoff functions",
                     style_name, r_max);

  // inputs this style can provide
  has_field_input = false;
  has_atomic_field_input = false;
  has_cell_input = false;
  std::vector<std::string> req = required_inputs();
  for (auto &key : input_keys) {
    if (key == KEY_CELL) has_cell_input = true;
    if (key == KEY_FIELD) {
      has_field_input = true;
      continue;
    }
    if (key == KEY_ATOMIC_FIELD) {
      has_atomic_field_input = true;
      continue;
    }
    bool ok = false;
    for (auto &r : req) ok = ok || (r == key);
    if (!ok) {
      if (key == "cell" || key == "edge_cell_shift")
        error->all(FLERR,
                   "pair_coeff {}: model {} needs input '{}': it was compiled for message-passing "
                   "NequIP (target nequip_pol_pair_nequip); use pair_style nequip/pol",
                   style_name, path, key);
      error->all(FLERR, "pair_coeff {}: model {} needs input '{}', which {} cannot provide",
                 style_name, path, key, style_name);
    }
  }
  for (auto &r : req) {
    bool ok = false;
    for (auto &key : input_keys) ok = ok || (r == key);
    if (!ok)
      error->all(FLERR,
                 "pair_coeff {}: model {} has no input '{}': it was compiled for another target "
                 "(inputs: {}); compile with --target {}",
                 style_name, path, r, metadata[META_INPUTS], target_name(false, false));
  }
  if (!has_field_input) {
    if (field_is_set)
      error->all(FLERR,
                 "pair_style {}: an electric field was given, but the model {} has no "
                 "electric_field input (inputs: {})",
                 style_name, path, metadata[META_INPUTS]);
    error->all(FLERR,
               "pair_coeff {}: model {} was compiled without the electric_field input (inputs: "
               "{}); compile a field-aware model with --target {} (or use nequip's own pair "
               "styles for field-free models)",
               style_name, path, metadata[META_INPUTS], target_name(false, false));
  }

  out_energy = find_output(KEY_ENERGY);
  out_forces = find_output(KEY_FORCES);
  out_virial = find_output(KEY_VIRIAL);
  out_pol = find_output(KEY_POL);
  out_born = find_output(KEY_BORN);
  out_alpha = find_output(KEY_ALPHA);
  out_dipoles = find_output(KEY_DIPOLES);
  if (out_energy < 0 || out_forces < 0)
    error->all(FLERR, "pair_coeff {}: model {} must output atomic_energy and forces (outputs: {})",
               style_name, path, metadata[META_OUTPUTS]);
  has_pol = out_pol >= 0;
  has_born = out_born >= 0;
  has_alpha = out_alpha >= 0;
  has_dipoles = out_dipoles >= 0;
  no_virial_fdotr_compute = (out_virial >= 0) ? 1 : 0;

  offset_set = false;
  auto off = metadata.find(META_OFFSET);
  if (off != metadata.end() && !off->second.empty()) {
    std::string s = off->second;
    for (auto &c : s)
      if (c == ',' || c == '[' || c == ']' || c == '(' || c == ')') c = ' ';
    auto w = split_words(s);
    if (w.size() != 3)
      error->all(FLERR, "pair_coeff {}: model metadata {} must have 3 numbers, got '{}'",
                 style_name, META_OFFSET, off->second);
    for (int k = 0; k < 3; k++) offset_frac[k] = utils::numeric(FLERR, w[k], false, lmp);
    offset_set = offset_frac[0] != 0.0 || offset_frac[1] != 0.0 || offset_frac[2] != 0.0;
  }

  guard_read_metadata(path);

  model_device = package_device(metadata);
  check_device(path);

  // the compiled model itself
  try {
    loader.reset();
    loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
        path, "model", false, 1, (c10::DeviceIndex) device_index);
  } catch (std::exception &e) {
    error->all(FLERR, "pair_coeff {}: cannot load the AOTInductor package {}: {}", style_name,
               path, first_line(e.what()));
  }

  if (comm->me == 0)
    utils::logmesg(lmp,
                   "{}: loaded {} (species: {}; r_max = {}; dtype {}; inputs: {}; outputs: {})\n",
                   style_name, path, metadata["type_names"], r_max, dtype, metadata[META_INPUTS],
                   metadata[META_OUTPUTS]);
  if (device_index >= 0) {
    // only rank 0 writes the log: gather every rank's GPU
    std::vector<int> devices(comm->nprocs, -1);
    MPI_Gather(&device_index, 1, MPI_INT, devices.data(), 1, MPI_INT, 0, world);
    if (comm->me == 0) {
      std::string where;
      for (int r = 0; r < comm->nprocs; r++)
        where += " " + std::to_string(r) + ":cuda:" + std::to_string(devices[r]);
      utils::logmesg(lmp, "{}: the model runs on the GPU (rank:device):{}\n", style_name, where);
    }
  }
}

/* ----------------------------------------------------------------------
   the device comes from the package (nequip-compile --device); a device keyword only
   confirms it. A CUDA package needs a torch that can reach a GPU: checked here, at
   pair_coeff, because loading it without one fails deep inside the loader
------------------------------------------------------------------------- */

void PairPolBase::check_device(const std::string &path)
{
  if (model_device != "cpu" && model_device != "cuda")
    error->all(FLERR,
               "pair_coeff {}: model {} was compiled for device '{}'; the pair style runs "
               "packages compiled with nequip-compile --device cpu or --device cuda",
               style_name, path, model_device);
  if (!device_keyword.empty() && device_keyword != model_device)
    error->all(FLERR,
               "pair_style {}: device {} was requested, but the model {} was compiled for {} "
               "(nequip-compile --device {}); compile it with --device {} or drop the device "
               "keyword",
               style_name, device_keyword, path, model_device, model_device, device_keyword);
  device_index = -1;
  if (model_device != "cuda") return;
  if (!torch::cuda::is_available())
    error->all(FLERR,
               "pair_coeff {}: model {} was compiled for cuda (nequip-compile --device cuda), "
               "but this torch cannot use CUDA (a CPU build of torch, or no GPU visible); run "
               "with a CUDA build of torch or compile the model with --device cpu",
               style_name, path);
  // one GPU per rank of a node, round robin (CUDA_VISIBLE_DEVICES narrows the choice)
  MPI_Comm node;
  int node_rank = 0;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, comm->me, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &node_rank);
  MPI_Comm_free(&node);
  device_index = node_rank % (int) torch::cuda::device_count();
}

/* ----------------------------------------------------------------------
   the variant without Born charges (pair_style ... noborn FILE): same species, cutoff and
   inputs as the main model, every output of the main model except born_effective_charges
------------------------------------------------------------------------- */

void PairPolBase::load_noborn_model(const std::string &path)
{
  const std::string nb_target = target_name(has_atomic_field_input, true);
  {
    FILE *fp = fopen(path.c_str(), "rb");
    if (!fp)
      error->all(FLERR, "pair_style {} noborn: cannot open model file {}", style_name, path);
    fclose(fp);
    std::string problem = nequip_pol::pol_zip_problem(path);
    if (!problem.empty())
      error->all(FLERR, "pair_style {} noborn: model file {} is {}", style_name, path, problem);
  }
  if (!has_born)
    error->all(FLERR,
               "pair_style {} noborn: the model {} of pair_coeff has no Born charges itself; "
               "give the model with Born charges in pair_coeff and the one without after noborn",
               style_name, model_path);
  std::unordered_map<std::string, std::string> meta;
  try {
    meta = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path, "model");
  } catch (std::exception &e) {
    error->all(FLERR, "pair_style {} noborn: cannot read the AOTInductor package {}: {}",
               style_name, path, first_line(e.what()));
  }
  // checked first: loading a package of the other device fails without a clear reason
  if (package_device(meta) != model_device)
    error->all(FLERR,
               "pair_style {} noborn: model {} was compiled for {}, but the model {} of "
               "pair_coeff for {}; compile both with the same nequip-compile --device",
               style_name, path, package_device(meta), model_path, model_device);
  for (const char *key : {META_INPUTS, META_OUTPUTS, "type_names", "r_max", "model_dtype"}) {
    if (!meta.count(key))
      error->all(FLERR, "pair_style {} noborn: model {} lacks metadata '{}'", style_name, path,
                 key);
    // the two variants run on the same inputs: the per-atom field in both or in neither
    if (strcmp(key, META_INPUTS) == 0) {
      auto inputs = split_words(meta[key]);
      const bool nb_atomic =
          std::find(inputs.begin(), inputs.end(), KEY_ATOMIC_FIELD) != inputs.end();
      if (nb_atomic != has_atomic_field_input)
        error->all(FLERR,
                   "pair_style {} noborn: the model {} of pair_coeff {} the per-atom field input "
                   "{} and the model {} {}; both must have the same inputs: compile the second "
                   "with --target {}",
                   style_name, model_path, has_atomic_field_input ? "takes" : "does not take",
                   KEY_ATOMIC_FIELD, path, nb_atomic ? "does" : "does not", nb_target);
    }
    if (strcmp(key, META_OUTPUTS) == 0) continue;
    if (split_words(meta[key]) != split_words(metadata[key]))
      error->all(FLERR,
                 "pair_style {} noborn: model {} does not match the model {} of pair_coeff: {} "
                 "is '{}' there and '{}' here (compile both from the same checkpoint, the "
                 "second with --target {})",
                 style_name, path, model_path, key, metadata[key], meta[key], nb_target);
  }
  output_keys_nb = split_words(meta[META_OUTPUTS]);
  auto find = [&](const char *key) {
    for (size_t k = 0; k < output_keys_nb.size(); k++)
      if (output_keys_nb[k] == key) return (int) k;
    return -1;
  };
  if (find(KEY_BORN) >= 0)
    error->all(FLERR,
               "pair_style {} noborn: model {} computes Born charges; compile it with --target "
               "{} (--modifiers disable_born_charges)",
               style_name, path, nb_target);
  nb_energy = find(KEY_ENERGY);
  nb_forces = find(KEY_FORCES);
  nb_virial = find(KEY_VIRIAL);
  nb_pol = find(KEY_POL);
  nb_alpha = find(KEY_ALPHA);
  nb_dipoles = find(KEY_DIPOLES);
  const std::pair<const char *, bool> wanted[] = {
      {KEY_ENERGY, true}, {KEY_FORCES, true}, {KEY_VIRIAL, out_virial >= 0},
      {KEY_POL, has_pol}, {KEY_ALPHA, has_alpha}, {KEY_DIPOLES, has_dipoles}};
  for (auto &w : wanted)
    if (w.second && find(w.first) < 0)
      error->all(FLERR,
                 "pair_style {} noborn: model {} lacks the output {} of the model {} (outputs: "
                 "{}); compile it with --target {}",
                 style_name, path, w.first, model_path, meta[META_OUTPUTS], nb_target);
  try {
    loader_nb = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
        path, "model", false, 1, (c10::DeviceIndex) device_index);
  } catch (std::exception &e) {
    error->all(FLERR, "pair_style {} noborn: cannot load the AOTInductor package {}: {}",
               style_name, path, first_line(e.what()));
  }
  if (comm->me == 0)
    utils::logmesg(lmp,
                   "{}: loaded {} without Born charges (outputs: {}); used on steps where no "
                   "fix efield/born or compute born/atom needs Z*\n",
                   style_name, path, meta[META_OUTPUTS]);
}

std::string PairPolBase::target_name(bool atomic, bool no_born) const
{
  std::string name = strcmp(style_name, "allegro/pol") == 0 ? "nequip_pol_pair_allegro"
                                                            : "nequip_pol_pair_nequip";
  if (atomic) name += "_atomic_field";
  if (no_born) name += "_no_born";
  return name;
}
