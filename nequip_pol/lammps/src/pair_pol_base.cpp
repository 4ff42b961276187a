/* ----------------------------------------------------------------------
   nequip_pol: common base of pair styles allegro/pol and nequip/pol.
------------------------------------------------------------------------- */

#include "pair_pol_base.h"
#include "pol_zip_check.h"

#include "atom.h"
#include "comm.h"
#include "compute.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "input.h"
#include "memory.h"
#include "modify.h"
#include "output.h"
#include "update.h"
#include "utils.h"
#include "variable.h"

#include <ATen/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

using namespace LAMMPS_NS;

static const char *KEY_POS = "pos";
static const char *KEY_EDGE_INDEX = "edge_index";
static const char *KEY_ATOM_TYPES = "atom_types";
static const char *KEY_FIELD = "electric_field";
static const char *KEY_ATOMIC_FIELD = "atomic_electric_field";
static const char *KEY_CELL = "cell";
static const char *KEY_ENERGY = "atomic_energy";
static const char *KEY_FORCES = "forces";
static const char *KEY_VIRIAL = "virial";
static const char *KEY_POL = "polarization";
static const char *KEY_BORN = "born_effective_charges";
static const char *KEY_ALPHA = "polarizability";
static const char *KEY_DIPOLES = "atomic_dipoles";
static const char *META_INPUTS = "nequip_aoti_inputs";
static const char *META_OUTPUTS = "nequip_aoti_outputs";
static const char *META_OFFSET = "polarization_offset_fractional";
// the training range (nequip_pol.guards.ranges_metadata): max |E| (V/A) and the smallest
// distance per species pair, "Ba-O:2.31 O-Ti:1.71" (A)
static const char *META_MAX_FIELD = "nequip_pol_max_field";
static const char *META_MIN_DISTANCE = "nequip_pol_min_distance";
// written by torch's AOTInductor into every package: the device it was compiled for
static const char *META_DEVICE = "AOTI_DEVICE_KEY";

// the device a package was compiled for (nequip's own loader reads the same key); "cpu" where
// the key is missing
static std::string package_device(const std::unordered_map<std::string, std::string> &meta)
{
  auto it = meta.find(META_DEVICE);
  return (it == meta.end() || it->second.empty()) ? std::string("cpu") : it->second;
}

static std::vector<std::string> split_words(const std::string &s)
{
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

// a whole string as one number (false: not a number)
static bool parse_number(const std::string &s, double &value)
{
  if (s.empty()) return false;
  char *end = nullptr;
  value = std::strtod(s.c_str(), &end);
  return end && *end == '\0' && std::isfinite(value);
}

static std::string first_line(const char *what)
{
  std::string s(what ? what : "");
  auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
}

/* ---------------------------------------------------------------------- field helpers */

void LAMMPS_NS::pol_parse_field(LAMMPS *lmp, const char *what, char **arg, PolFieldComponent *comp)
{
  for (int k = 0; k < 3; k++) {
    std::string s(arg[k]);
    if (utils::strmatch(s, "^v_")) {
      comp[k].varname = s.substr(2);
      comp[k].value = 0.0;
    } else {
      comp[k].varname.clear();
      comp[k].value = utils::numeric(FLERR, s, false, lmp);
    }
    comp[k].ivar = -1;
  }
  (void) what;
}

void LAMMPS_NS::pol_init_field(LAMMPS *lmp, const char *what, PolFieldComponent *comp,
                               bool allow_atom)
{
  for (int k = 0; k < 3; k++) {
    comp[k].atom = false;
    if (comp[k].varname.empty()) continue;
    int ivar = lmp->input->variable->find(comp[k].varname.c_str());
    if (ivar < 0)
      lmp->error->all(FLERR, "{}: variable {} for the electric field does not exist", what,
                      comp[k].varname);
    if (allow_atom && lmp->input->variable->atomstyle(ivar))
      comp[k].atom = true;
    else if (!lmp->input->variable->equalstyle(ivar))
      lmp->error->all(FLERR, "{}: variable {} for the electric field must be equal-style{}", what,
                      comp[k].varname, allow_atom ? " or atom-style" : "");
    comp[k].ivar = ivar;
  }
}

void LAMMPS_NS::pol_eval_field(LAMMPS *lmp, PolFieldComponent *comp, double *field)
{
  bool any_variable = false;
  for (int k = 0; k < 3; k++) any_variable = any_variable || (comp[k].ivar >= 0 && !comp[k].atom);
  // as fix efield: computes a variable refers to are evaluated now and flagged for the next step
  if (any_variable) lmp->modify->clearstep_compute();
  for (int k = 0; k < 3; k++) {
    if (comp[k].atom)
      field[k] = 0.0;    // the per-atom part: PairPolBase::eval_atomic_field
    else if (comp[k].ivar >= 0)
      field[k] = lmp->input->variable->compute_equal(comp[k].ivar);
    else
      field[k] = comp[k].value;
  }
  if (any_variable) lmp->modify->addstep_compute(lmp->update->ntimestep + 1);
}

/* ---------------------------------------------------------------------- */

PairPolBase::PairPolBase(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  comm_reverse = 9;    // Born charges of ghost nodes to their owners
  comm_forward = 3;    // the per-atom field to the ghosts
  no_virial_fdotr_compute = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  style_name = "pol";
}

PairPolBase::~PairPolBase()
{
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
  memory->destroy(born);
  memory->destroy(dipole);
  memory->destroy(atomic_field);
  delete last_args;
}

// the tensor device of the model (CUDA: this rank's GPU)
static at::Device model_at_device(int device_index)
{
  return device_index >= 0 ? at::Device(at::kCUDA, (c10::DeviceIndex) device_index)
                           : at::Device(at::kCPU);
}

void PairPolBase::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

/* ----------------------------------------------------------------------
   pair_style NAME [efield Ex Ey Ez]
------------------------------------------------------------------------- */

void PairPolBase::settings(int narg, char **arg)
{
  field_is_set = false;
  device_keyword.clear();
  guard_mode = GUARD_WARN;
  guard_field_factor = 1.2;
  guard_distance_factor = 1.0;
  guard_announced = false;    // the guard's line again at the next run (settings may change)
  for (int k = 0; k < 3; k++) field_spec[k] = PolFieldComponent();
  std::string nb_path;
  int iarg = 0;
  while (iarg < narg) {
    if (strcmp(arg[iarg], "efield") == 0) {
      if (iarg + 4 > narg)
        error->all(FLERR, "pair_style {}: efield needs three components (number or v_name)",
                   style_name);
      pol_parse_field(lmp, style_name, arg + iarg + 1, field_spec);
      field_is_set = true;
      iarg += 4;
    } else if (strcmp(arg[iarg], "noborn") == 0) {
      if (iarg + 2 > narg)
        error->all(FLERR,
                   "pair_style {}: noborn needs the file of the model compiled without Born "
                   "charges (--target nequip_pol_pair_allegro_no_born)",
                   style_name);
      nb_path = arg[iarg + 1];
      iarg += 2;
    } else if (strcmp(arg[iarg], "device") == 0) {
      if (iarg + 2 > narg ||
          (strcmp(arg[iarg + 1], "cpu") != 0 && strcmp(arg[iarg + 1], "cuda") != 0))
        error->all(FLERR, "pair_style {}: device needs cpu or cuda", style_name);
      device_keyword = arg[iarg + 1];
      iarg += 2;
    } else if (strcmp(arg[iarg], "guard") == 0) {
      if (iarg + 2 > narg)
        error->all(FLERR, "pair_style {}: guard needs warn, error or off", style_name);
      if (strcmp(arg[iarg + 1], "warn") == 0)
        guard_mode = GUARD_WARN;
      else if (strcmp(arg[iarg + 1], "error") == 0)
        guard_mode = GUARD_ERROR;
      else if (strcmp(arg[iarg + 1], "off") == 0)
        guard_mode = GUARD_OFF;
      else
        error->all(FLERR, "pair_style {}: guard needs warn, error or off, got {}", style_name,
                   arg[iarg + 1]);
      iarg += 2;
    } else if (strcmp(arg[iarg], "guard_field") == 0 ||
               strcmp(arg[iarg], "guard_distance") == 0) {
      const bool is_field = strcmp(arg[iarg], "guard_field") == 0;
      double value = 0.0;
      bool ok = iarg + 2 <= narg && parse_number(arg[iarg + 1], value);
      ok = ok && (is_field ? value >= 1.0 : (value > 0.0 && value <= 1.0));
      if (!ok)
        error->all(FLERR, "pair_style {}: {} needs a factor {} (default {})", style_name,
                   arg[iarg], is_field ? ">= 1" : "in (0, 1]", is_field ? "1.2" : "1.0");
      (is_field ? guard_field_factor : guard_distance_factor) = value;
      iarg += 2;
    } else {
      error->all(FLERR,
                 "pair_style {}: unknown keyword {} (expected: efield Ex Ey Ez, noborn FILE, "
                 "device cpu|cuda, guard warn|error|off, guard_field F, guard_distance D)",
                 style_name, arg[iarg]);
    }
  }
  // pair_style re-issued after pair_coeff: the loaded model must match a device keyword
  if (loader) check_device(model_path);
  model_nb_path = nb_path;
  loader_nb.reset();
  // pair_style re-issued after pair_coeff: the main model is there, load the variant now
  if (loader && !model_nb_path.empty()) load_noborn_model(model_nb_path);
  // a model already loaded (pair_style re-issued): check the field again
  if (loader && field_is_set && !has_field_input)
    error->all(FLERR,
               "pair_style {}: an electric field was given, but the model {} has no "
               "electric_field input",
               style_name, model_path);
}

/* ----------------------------------------------------------------------
   pair_coeff * * model.nequip.pt2 Type1 Type2 ...
------------------------------------------------------------------------- */

void PairPolBase::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  int ntypes = atom->ntypes;
  if (narg != 3 + ntypes)
    error->all(FLERR,
               "pair_coeff for {} must be: pair_coeff * * model.nequip.pt2 <one model species name "
               "per LAMMPS atom type ({} types)>",
               style_name, ntypes);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for {} must start with * *", style_name);

  load_model(arg[2]);
  loader_nb.reset();
  if (!model_nb_path.empty()) load_noborn_model(model_nb_path);

  type_mapper.assign(ntypes + 1, -1);
  for (int itype = 1; itype <= ntypes; itype++) {
    std::string name(arg[2 + itype]);
    int found = -1;
    for (size_t k = 0; k < model_type_names.size(); k++)
      if (model_type_names[k] == name) found = (int) k;
    if (found < 0) {
      std::string known;
      for (auto &t : model_type_names) known += " " + t;
      error->all(FLERR, "pair_coeff {}: species {} (LAMMPS type {}) is not in the model {}; "
                 "the model's species are:{}", style_name, name, itype, model_path, known);
    }
    type_mapper[itype] = found;
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
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

// Z* are computed within the force call when something needs them on this step: always
// without the noborn variant; with it, when a fix efield/born exists (every step) or a dump is
// due on this step and a compute born/atom is scheduled (LAMMPS' compute invocation list,
// Compute::matchstep). Every other request (fix ave/atom, variables, write_dump, ...) is met
// by ensure_born(), which re-runs the full model on the same graph.
bool PairPolBase::born_needed()
{
  if (!loader_nb) return true;
  if (born_fix) return true;
  bool scheduled = false;
  for (auto *c : born_computes)
    if (c->matchstep(update->ntimestep)) scheduled = true;
  return scheduled && output->next_dump_any == update->ntimestep;
}

void PairPolBase::ensure_born(const char *who)
{
  if (born_pending) {
    at::Tensor z = std::move(*born_pending);
    born_pending.reset();
    store_born(z.to(at::kCPU, at::kDouble).contiguous(), last_nnodes);
    return;
  }
  // without the variant every force call computed Z*: born[] holds those of the last one
  if (!born_on_demand()) return;
  if (born_step == update->ntimestep && born_step >= 0) return;
  if (last_step != update->ntimestep || !last_args)
    error->all(FLERR,
               "{}: the pair style was not evaluated on step {} (last on step {}): run 0 first",
               who, update->ntimestep, last_step);
  std::vector<at::Tensor> out;
  try {
    out = loader->run(*last_args);
  } catch (std::exception &e) {
    error->one(FLERR, "pair {}: the model failed on {} nodes: {}", style_name, last_nnodes,
               first_line(e.what()));
  }
  if (out.size() != output_keys.size())
    error->one(FLERR, "pair {}: the model returned {} outputs, its metadata lists {}", style_name,
               out.size(), output_keys.size());
  n_eval_extra++;
  store_born(out[out_born].to(at::kCPU, at::kDouble).contiguous(), last_nnodes);
}

void PairPolBase::store_born(const at::Tensor &zo, int nnodes)
{
  const double *z = zo.data_ptr<double>();
  int nall = atom->nlocal + atom->nghost;
  grow_response(atom->nmax > nall ? atom->nmax : nall);
  const bool remap = !node_atom.empty();
  for (int i = 0; i < nall; i++)
    for (int k = 0; k < 9; k++) born[i][k] = 0.0;
  for (int n = 0; n < nnodes; n++) {
    int i = remap ? node_atom[n] : n;
    for (int k = 0; k < 9; k++) born[i][k] = z[9 * n + k];
  }
  // ghost contributions to their owners (newton on)
  comm->reverse_comm(this);    // collective: every rank, also with no ghost edges
  born_step = update->ntimestep;
}

void PairPolBase::finish()
{
  if (guard_on() && comm->me == 0)
    utils::logmesg(lmp,
                   "{}: extrapolation guard: {} evaluations, outside the trained range: field {}, "
                   "distance {}\n",
                   style_name, guard_checked, guard_n_field, guard_n_distance);
  if (loader_nb && comm->me == 0)
    utils::logmesg(lmp,
                   "{}: {} model evaluations with Born charges, {} without (noborn variant), {} "
                   "extra for Z* asked for after the force call\n",
                   style_name, n_eval_born, n_eval_noborn, n_eval_extra);
}

/* ---------------------------------------------------------------------- */

void PairPolBase::init_style()
{
  if (!loader) error->all(FLERR, "pair {}: no model loaded (pair_coeff missing)", style_name);
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair {} requires 'units metal' (eV, Angstrom; field in V/Angstrom)",
               style_name);
  if (offset_set && !(domain->xperiodic && domain->yperiodic && domain->zperiodic))
    error->all(FLERR,
               "pair {}: the model has a polarization offset in units of the lattice vectors, "
               "which needs a box periodic in x, y and z",
               style_name);
  pol_init_field(lmp, style_name, field_spec, true);
  std::string atom_vars;
  int n_atom = 0;
  for (auto &c : field_spec)
    if (c.atom) {
      n_atom++;
      atom_vars += " v_" + c.varname;
    }
  atomic_field_on = n_atom > 0;
  if (atomic_field_on && !has_atomic_field_input)
    error->all(FLERR,
               "pair {}: the efield component{}{} {} atom-style (a field that varies in space), "
               "but the model {} has no {} input (inputs: {}); compile it with --target {} (and "
               "a noborn variant with --target {})",
               style_name, n_atom > 1 ? "s" : "", atom_vars, n_atom > 1 ? "are" : "is",
               model_path, KEY_ATOMIC_FIELD, metadata[META_INPUTS], target_name(true, false),
               target_name(true, true));

  if (!model_nb_path.empty() && !loader_nb)
    error->all(FLERR, "pair {}: the noborn model {} is not loaded (pair_coeff missing)",
               style_name, model_nb_path);
  born_computes = modify->get_compute_by_style("^born/atom$");
  born_fix = !modify->get_fix_by_style("^efield/born$").empty();
  n_eval_born = n_eval_noborn = n_eval_extra = 0;
  guard_init();
}

double PairPolBase::init_one(int, int)
{
  return r_max;
}

std::string PairPolBase::target_name(bool atomic, bool no_born) const
{
  std::string name = strcmp(style_name, "allegro/pol") == 0 ? "nequip_pol_pair_allegro"
                                                            : "nequip_pol_pair_nequip";
  if (atomic) name += "_atomic_field";
  if (no_born) name += "_no_born";
  return name;
}

/* ----------------------------------------------------------------------
   the per-atom field of the atom-style components (V/A), every force call: evaluated on the
   local atoms at their current positions (and time), then copied to the ghosts by forward
   communication, so that a ghost carries the value of the atom it is an image of (evaluated at
   the owner's position, not at the image's). Components that are constants or equal-style
   variables are 0 here: they are the frame field. The model takes the field of each edge at
   its centre atom, which is always a local atom, so only the local values enter the result;
   the ghost values complete the input (one row per graph node).
------------------------------------------------------------------------- */

void PairPolBase::eval_atomic_field()
{
  const int nall = atom->nlocal + atom->nghost;
  if (atom->nmax > nmax_atomic_field || nall > nmax_atomic_field) {
    nmax_atomic_field = std::max(atom->nmax, nall);
    memory->destroy(atomic_field);
    memory->create(atomic_field, nmax_atomic_field, 3, "pair:atomic_field");
  }
  const int nlocal = atom->nlocal;
  for (int i = 0; i < nall; i++) atomic_field[i][0] = atomic_field[i][1] = atomic_field[i][2] = 0.0;
  double *values = nlocal > 0 ? &atomic_field[0][0] : nullptr;
  // as fix efield: computes the variables refer to are evaluated now and flagged for the next step
  modify->clearstep_compute();
  for (int k = 0; k < 3; k++)
    if (field_spec[k].atom)
      input->variable->compute_atom(field_spec[k].ivar, 0, values ? values + k : nullptr, 3, 0);
  modify->addstep_compute(update->ntimestep + 1);
  comm->forward_comm(this);    // collective: every rank evaluates the same components
}

int PairPolBase::pack_forward_comm(int n, int *list, double *buf, int, int *)
{
  // the field is a value at the owner, not a function of the image's position: no pbc shift
  int m = 0;
  for (int i = 0; i < n; i++) {
    int j = list[i];
    buf[m++] = atomic_field[j][0];
    buf[m++] = atomic_field[j][1];
    buf[m++] = atomic_field[j][2];
  }
  return m;
}

void PairPolBase::unpack_forward_comm(int n, int first, double *buf)
{
  int m = 0;
  const int last = first + n;
  for (int i = first; i < last; i++) {
    atomic_field[i][0] = buf[m++];
    atomic_field[i][1] = buf[m++];
    atomic_field[i][2] = buf[m++];
  }
}

void PairPolBase::grow_response(int n)
{
  if (n <= nmax_resp) return;
  nmax_resp = n;
  memory->destroy(born);
  memory->destroy(dipole);
  memory->create(born, nmax_resp, 9, "pair:born");
  memory->create(dipole, nmax_resp, 3, "pair:dipole");
}

/* ---------------------------------------------------------------------- */

void PairPolBase::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);

  pol_eval_field(lmp, field_spec, field);
  if (atomic_field_on) eval_atomic_field();
  if (guard_on()) guard_check();

  std::unordered_map<std::string, at::Tensor> in;
  int nnodes = build_inputs(in);
  at::Tensor efield = at::empty({1, 3}, at::kDouble);
  for (int k = 0; k < 3; k++) efield.data_ptr<double>()[k] = field[k];
  in[KEY_FIELD] = efield;
  if (has_atomic_field_input) {
    // one row per graph node (node k is atom node_atom[k]); zeros without atom-style
    // components, which gives the model's result at the frame field alone
    at::Tensor afield = at::zeros({nnodes, 3}, at::kDouble);
    if (atomic_field_on) {
      double *a_p = afield.data_ptr<double>();
      const bool remap_nodes = !node_atom.empty();
      for (int k = 0; k < nnodes; k++) {
        const int i = remap_nodes ? node_atom[k] : k;
        for (int c = 0; c < 3; c++) a_p[3 * k + c] = atomic_field[i][c];
      }
    }
    in[KEY_ATOMIC_FIELD] = afield;
  }

  // the graph is built on the host and moved to the model's device once (no copy on the CPU);
  // the outputs stay there until each is copied back once below
  const at::Device device = model_at_device(device_index);
  std::vector<at::Tensor> args;
  args.reserve(input_keys.size());
  for (auto &key : input_keys) args.push_back(in.at(key).to(device));

  // which variant: with Z* when a consumer needs them on this step (collective decision:
  // the invocation schedule and the fixes are the same on every rank)
  const bool full = born_needed();
  auto *model = full ? loader.get() : loader_nb.get();
  const size_t nout = full ? output_keys.size() : output_keys_nb.size();
  const int o_energy = full ? out_energy : nb_energy, o_forces = full ? out_forces : nb_forces,
            o_virial = full ? out_virial : nb_virial, o_pol = full ? out_pol : nb_pol,
            o_alpha = full ? out_alpha : nb_alpha, o_dipoles = full ? out_dipoles : nb_dipoles,
            o_born = full ? out_born : -1;
  if (full)
    n_eval_born++;
  else
    n_eval_noborn++;

  std::vector<at::Tensor> out;
  try {
    out = model->run(args);
  } catch (std::exception &e) {
    error->one(FLERR, "pair {}: the model failed on {} nodes: {}", style_name, nnodes,
               first_line(e.what()));
  }
  if (out.size() != nout)
    error->one(FLERR, "pair {}: the model returned {} outputs, its metadata lists {}", style_name,
               out.size(), nout);
  auto get = [&](int k) { return out[k].to(at::kCPU, at::kDouble).contiguous(); };

  int nlocal = atom->nlocal;
  int nall = nlocal + atom->nghost;
  double **f = atom->f;

  // energy: each local atom's enthalpy (ghost nodes carry no edges of their own)
  at::Tensor ae = get(o_energy);
  const double *ae_p = ae.data_ptr<double>();
  double elocal = 0.0;
  for (int i = 0; i < nlocal; i++) elocal += ae_p[i];
  if (eflag_global) eng_vdwl += elocal;
  if (eflag_atom)
    for (int i = 0; i < nlocal; i++) eatom[i] += ae_p[i];

  at::Tensor fo = get(o_forces);
  const double *f_p = fo.data_ptr<double>();
  const bool remap = !node_atom.empty();
  for (int k = 0; k < nnodes; k++) {
    int i = remap ? node_atom[k] : k;
    f[i][0] += f_p[3 * k + 0];
    f[i][1] += f_p[3 * k + 1];
    f[i][2] += f_p[3 * k + 2];
  }

  if (vflag_global) {
    if (o_virial >= 0) {
      at::Tensor vo = get(o_virial);
      const double *v = vo.data_ptr<double>();
      virial[0] += v[0];
      virial[1] += v[4];
      virial[2] += v[8];
      virial[3] += 0.5 * (v[1] + v[3]);
      virial[4] += 0.5 * (v[2] + v[6]);
      virial[5] += 0.5 * (v[5] + v[7]);
    } else if (vflag_fdotr) {
      virial_fdotr_compute();
    }
  }
  if (vflag_atom && comm->me == 0 && update->ntimestep == update->firststep)
    error->warning(FLERR, "pair {}: per-atom virial is not computed (left zero)", style_name);

  // response outputs of this rank
  for (int k = 0; k < 3; k++) pol_local[k] = 0.0;
  for (int k = 0; k < 9; k++) alpha_local[k] = 0.0;
  if (has_pol) {
    at::Tensor po = get(o_pol);
    for (int k = 0; k < 3; k++) pol_local[k] = po.data_ptr<double>()[k];
  }
  if (has_alpha) {
    at::Tensor ao = get(o_alpha);
    for (int k = 0; k < 9; k++) alpha_local[k] = ao.data_ptr<double>()[k];
  }

  // constant P0 = f @ cell, added here where the compiled graph has no cell input (Allegro
  // target; a model with the cell input, nequip/pol, applies it itself). As in the model, it is
  // charged to the atoms evenly, each at its own field: atom i gets the dipole P0/N and the
  // enthalpy -(P0/N).(E + E_i). The frame part -P0.E goes to rank 0, the per-atom part to the
  // rank of each atom.
  double p0[3] = {0, 0, 0};
  const bool add_offset = offset_set && !has_cell_input;
  if (add_offset) {
    double *h = domain->h;    // a = (h0,0,0), b = (h5,h1,0), c = (h4,h3,h2)
    double cell[3][3] = {{h[0], 0.0, 0.0}, {h[5], h[1], 0.0}, {h[4], h[3], h[2]}};
    for (int a = 0; a < 3; a++)
      for (int k = 0; k < 3; k++) p0[a] += offset_frac[k] * cell[k][a];
    // the field the offset sees on this rank: E on rank 0, plus sum_i E_i / N over local atoms
    double e_off[3] = {0, 0, 0};
    if (comm->me == 0) {
      for (int a = 0; a < 3; a++) e_off[a] = field[a];
      for (int a = 0; a < 3; a++) pol_local[a] += p0[a];
    }
    if (atomic_field_on && atom->natoms > 0) {
      double sum[3] = {0, 0, 0};
      for (int i = 0; i < nlocal; i++)
        for (int a = 0; a < 3; a++) sum[a] += atomic_field[i][a];
      for (int a = 0; a < 3; a++) e_off[a] += sum[a] / (double) atom->natoms;
    }
    double e0 = -(p0[0] * e_off[0] + p0[1] * e_off[1] + p0[2] * e_off[2]);
    if (eflag_global) eng_vdwl += e0;
    if (vflag_global) {
      // W_ab = -dE/d(strain_ab) = P0_a E_b at fixed field values (P0 strains with the cell)
      virial[0] += p0[0] * e_off[0];
      virial[1] += p0[1] * e_off[1];
      virial[2] += p0[2] * e_off[2];
      virial[3] += 0.5 * (p0[0] * e_off[1] + p0[1] * e_off[0]);
      virial[4] += 0.5 * (p0[0] * e_off[2] + p0[2] * e_off[0]);
      virial[5] += 0.5 * (p0[1] * e_off[2] + p0[2] * e_off[1]);
    }
  }

  grow_response(atom->nmax > nall ? atom->nmax : nall);
  // Z* go to the host (and their ghost parts to the owners) only when a consumer was defined
  // at run set-up; otherwise they wait on the device for a late request (ensure_born)
  born_pending.reset();
  last_nnodes = nnodes;
  if (has_born && o_born >= 0) {
    if (born_fix || !born_computes.empty())
      store_born(get(o_born), nnodes);
    else
      born_pending = std::make_unique<at::Tensor>(out[o_born]);
  }
  // p_i = -dE/dE_i needs no reverse communication (unlike Z*): the field of edge i->j is the
  // field at its centre i, and centres are local atoms (allegro/pol: ghost nodes start no edge,
  // their rows are zero; nequip/pol: every node is a local atom)
  if (has_dipoles) {
    at::Tensor dpo = get(o_dipoles);
    const double *d = dpo.data_ptr<double>();
    double share[3] = {0, 0, 0};    // P0/N (see above)
    if (add_offset && atom->natoms > 0)
      for (int k = 0; k < 3; k++) share[k] = p0[k] / (double) atom->natoms;
    for (int i = 0; i < nlocal; i++)
      for (int k = 0; k < 3; k++) dipole[i][k] = d[3 * i + k] + share[k];
  }
  last_step = update->ntimestep;
  // the graph of this step, for ensure_born()
  if (loader_nb) {
    if (!last_args) last_args = new std::vector<at::Tensor>();
    *last_args = std::move(args);
  }
}

int PairPolBase::pack_reverse_comm(int n, int first, double *buf)
{
  int m = 0;
  int last = first + n;
  for (int i = first; i < last; i++)
    for (int k = 0; k < 9; k++) buf[m++] = born[i][k];
  return m;
}

void PairPolBase::unpack_reverse_comm(int n, int *list, double *buf)
{
  int m = 0;
  for (int i = 0; i < n; i++) {
    int j = list[i];
    for (int k = 0; k < 9; k++) born[j][k] += buf[m++];
  }
}

double PairPolBase::memory_usage()
{
  return Pair::memory_usage() + 12.0 * sizeof(double) * nmax_resp +
      3.0 * sizeof(double) * nmax_atomic_field;
}

/* ----------------------------------------------------------------------
   extrapolation guard. The model's metadata (nequip_pol.guards.ranges_metadata, written when
   a checkpoint with recorded ranges is compiled) holds the largest |E| of the training data
   and the smallest distance per species pair. At every force call |E| is compared with
   guard_field x that maximum and every pair of the neighbor list with guard_distance x the
   minimum of its species pair (pairs of species the training data never had closer than its
   cutoff are not checked). The first case of a run is a warning (guard warn) or an error
   (guard error); later ones are counted and the counts printed at the end of the run.
------------------------------------------------------------------------- */

void PairPolBase::guard_read_metadata(const std::string &path)
{
  guard_has_ranges = false;
  guard_announced = false;
  guard_max_field = 0.0;
  guard_pairs.clear();
  auto mf = metadata.find(META_MAX_FIELD);
  if (mf == metadata.end() || mf->second.empty()) return;
  if (!parse_number(mf->second, guard_max_field) || guard_max_field < 0.0)
    error->all(FLERR, "pair_coeff {}: model {} has metadata {} = '{}', not a number >= 0",
               style_name, path, META_MAX_FIELD, mf->second);
  auto md = metadata.find(META_MIN_DISTANCE);
  if (md != metadata.end()) {
    for (auto &item : split_words(md->second)) {
      auto colon = item.rfind(':');
      double d = 0.0;
      if (colon == std::string::npos || colon == 0 || !parse_number(item.substr(colon + 1), d) ||
          d <= 0.0)
        error->all(FLERR,
                   "pair_coeff {}: model {} has metadata {} with entry '{}'; expected "
                   "A-B:distance entries such as O-Ti:1.71",
                   style_name, path, META_MIN_DISTANCE, item);
      guard_pairs.emplace_back(item.substr(0, colon), d);
    }
  }
  guard_has_ranges = true;
}

void PairPolBase::guard_init()
{
  guard_checked = guard_n_field = guard_n_distance = 0;
  guard_warned = false;
  const int n = atom->ntypes;
  guard_thr.assign((size_t) (n + 1) * (n + 1), 0.0);
  std::string checked;
  if (guard_on()) {
    for (int i = 1; i <= n; i++)
      for (int j = 1; j <= n; j++) {
        if (type_mapper.size() <= (size_t) std::max(i, j) || type_mapper[i] < 0 ||
            type_mapper[j] < 0)
          continue;
        std::string a = model_type_names[type_mapper[i]], b = model_type_names[type_mapper[j]];
        std::string key = a < b ? a + "-" + b : b + "-" + a;
        for (auto &p : guard_pairs)
          if (p.first == key) {
            guard_thr[(size_t) i * (n + 1) + j] = guard_distance_factor * p.second;
            if (i <= j && checked.find(" " + key + " ") == std::string::npos)
              checked += fmt::format(" {} {:.3f}", key, p.second);
          }
      }
  }
  if (guard_announced || comm->me != 0) return;
  guard_announced = true;
  if (!guard_has_ranges)
    utils::logmesg(lmp,
                   "{}: model {} has no recorded training range ({} in its metadata): the "
                   "extrapolation guard is off\n",
                   style_name, model_path, META_MAX_FIELD);
  else if (guard_mode == GUARD_OFF)
    utils::logmesg(lmp, "{}: extrapolation guard off (pair_style ... guard off)\n", style_name);
  else if (guard_max_field <= 0.0)
    utils::logmesg(lmp,
                   "{}: extrapolation guard ({}): trained at zero field only (the field acts "
                   "through the learned P, Z*, alpha; |E| is not checked); pairs closer than {} x "
                   "the training minimum (A):{}\n",
                   style_name, guard_mode == GUARD_ERROR ? "error" : "warn",
                   guard_distance_factor, checked.empty() ? " none" : checked);
  else
    utils::logmesg(lmp,
                   "{}: extrapolation guard ({}): |E| above {} x the trained maximum {:.4g} V/A; "
                   "pairs closer than {} x the training minimum (A):{}\n",
                   style_name, guard_mode == GUARD_ERROR ? "error" : "warn", guard_field_factor,
                   guard_max_field, guard_distance_factor, checked.empty() ? " none" : checked);
}

double PairPolBase::largest_field()
{
  // the frame field: the same on every rank
  if (!atomic_field_on)
    return std::sqrt(field[0] * field[0] + field[1] * field[1] + field[2] * field[2]);
  // with a per-atom field, the strongest field an atom sees, over all ranks
  double mine = 0.0, all = 0.0;
  for (int i = 0; i < atom->nlocal; i++) {
    double e2 = 0.0;
    for (int k = 0; k < 3; k++) {
      const double e = field[k] + atomic_field[i][k];
      e2 += e * e;
    }
    mine = std::max(mine, e2);
  }
  MPI_Allreduce(&mine, &all, 1, MPI_DOUBLE, MPI_MAX, world);
  return std::sqrt(all);
}

void PairPolBase::guard_check()
{
  guard_checked++;
  const double e = largest_field();
  // data at zero field only (the usual DFT set: P, Z*, alpha at E = 0): the field acts through
  // the learned response, and no field range was sampled to compare with
  const bool field_out = guard_max_field > 0.0 && e > guard_field_factor * guard_max_field;

  // pair distances on this rank, as a fraction of their threshold; the smallest one over ranks
  struct {
    double ratio;
    int pair;
  } mine = {1.0, -1}, worst = {1.0, -1};
  const int n = atom->ntypes;
  double **x = atom->x;
  const int *type = atom->type;
  for (int ii = 0; ii < list->inum; ii++) {
    const int i = list->ilist[ii];
    const double *thr_i = &guard_thr[(size_t) type[i] * (n + 1)];
    const int *jlist = list->firstneigh[i];
    const int jnum = list->numneigh[i];
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const double thr = thr_i[type[j]];
      if (thr <= 0.0) continue;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      const double r2 = dx * dx + dy * dy + dz * dz;
      if (r2 < mine.ratio * mine.ratio * thr * thr) {
        mine.ratio = std::sqrt(r2) / thr;
        mine.pair = type[i] * (n + 1) + type[j];
      }
    }
  }
  MPI_Allreduce(&mine, &worst, 1, MPI_DOUBLE_INT, MPI_MINLOC, world);
  const bool distance_out = worst.pair >= 0;
  if (field_out) guard_n_field++;
  if (distance_out) guard_n_distance++;
  if (!field_out && !distance_out) return;
  if (guard_warned && guard_mode != GUARD_ERROR) return;

  std::string what;
  if (field_out)
    what = fmt::format("|E| = {:.4g} V/A exceeds {} x the trained maximum {:.4g} V/A", e,
                       guard_field_factor, guard_max_field);
  if (distance_out) {
    const int ti = worst.pair / (n + 1), tj = worst.pair % (n + 1);
    std::string a = model_type_names[type_mapper[ti]], b = model_type_names[type_mapper[tj]];
    const double thr = guard_thr[worst.pair];
    if (!what.empty()) what += "; ";
    what += fmt::format("a {} pair at {:.3f} A, closer than {} x the training minimum {:.3f} A",
                        a < b ? a + "-" + b : b + "-" + a, worst.ratio * thr,
                        guard_distance_factor, thr / guard_distance_factor);
  }
  const std::string message =
      fmt::format("pair {}: extrapolating on step {}: {} (results outside the trained range are "
                  "unreliable)",
                  style_name, update->ntimestep, what);
  if (guard_mode == GUARD_ERROR)
    error->all(FLERR, message + "; pair_style ... guard warn only warns");
  guard_warned = true;
  if (comm->me == 0)
    error->warning(FLERR, message + "; further cases are counted silently and reported at the "
                                    "end of the run");
}
