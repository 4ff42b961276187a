/* ----------------------------------------------------------------------
   nequip_pol: common base of pair styles allegro/pol and nequip/pol.
   The pair style itself: construction, pair_style/pair_coeff, init_style, the force call
   (compute) and the response arrays. Model loading: pair_pol_model.cpp; the electric field:
   pair_pol_field.cpp; Born charges on demand: pair_pol_born.cpp; the extrapolation guard:
   pair_pol_guard.cpp.
------------------------------------------------------------------------- */

#include "pair_pol_base.h"
#include "pair_pol_util.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "modify.h"
#include "update.h"
#include "utils.h"

#include <ATen/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <cstring>

using namespace LAMMPS_NS;

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

double PairPolBase::memory_usage()
{
  return Pair::memory_usage() + 12.0 * sizeof(double) * nmax_resp +
      3.0 * sizeof(double) * nmax_atomic_field;
}
