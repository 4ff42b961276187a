/* ----------------------------------------------------------------------
   nequip_pol: pair style nequip/pol (message passing).
   Graph: nodes = local atoms only; an edge i->j to a ghost atom j is mapped to the local
   atom that j is an image of, with its lattice shift as edge cell shift (as nequip's own
   LAMMPS interface does for message-passing models). One MPI rank only.
------------------------------------------------------------------------- */

#include "pair_nequip_pol.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "neigh_list.h"
#include "neighbor.h"

#include <ATen/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <cmath>

using namespace LAMMPS_NS;

PairNequIPPol::PairNequIPPol(LAMMPS *lmp) : PairPolBase(lmp)
{
  style_name = "nequip/pol";
}

std::vector<std::string> PairNequIPPol::required_inputs() const
{
  return {"pos", "edge_index", "atom_types", "cell", "edge_cell_shift"};
}

void PairNequIPPol::settings(int narg, char **arg)
{
  PairPolBase::settings(narg, arg);
  check_single_rank();
}

void PairNequIPPol::check_single_rank()
{
  if (comm->nprocs > 1)
    error->all(FLERR,
               "pair nequip/pol runs on one MPI rank only ({} requested): message passing across "
               "ghost atoms of several ranks is not implemented; use a strictly local Allegro "
               "model with pair_style allegro/pol for domain decomposition",
               comm->nprocs);
}

void PairNequIPPol::init_style()
{
  PairPolBase::init_style();
  check_single_rank();
  if (atom->tag_enable == 0) error->all(FLERR, "pair nequip/pol requires atom IDs");
  if (atom->map_style == 0)
    error->all(FLERR, "pair nequip/pol requires an atom map (atom_modify map array)");
  neighbor->add_request(this, NeighConst::REQ_FULL);
}

int PairNequIPPol::build_inputs(std::unordered_map<std::string, at::Tensor> &inputs)
{
  double **x = atom->x;
  int *type = atom->type;
  tagint *tag = atom->tag;
  int nlocal = atom->nlocal;

  at::Tensor pos = at::empty({nlocal, 3}, at::kDouble);
  at::Tensor types = at::empty({nlocal}, at::kLong);
  double *pos_p = pos.data_ptr<double>();
  int64_t *types_p = types.data_ptr<int64_t>();
  for (int i = 0; i < nlocal; i++) {
    pos_p[3 * i + 0] = x[i][0];
    pos_p[3 * i + 1] = x[i][1];
    pos_p[3 * i + 2] = x[i][2];
    types_p[i] = type_mapper[type[i]];
  }

  // lattice vectors as rows: a = (xprd,0,0), b = (xy,yprd,0), c = (xz,yz,zprd)
  double *h = domain->h;
  at::Tensor cell = at::zeros({1, 3, 3}, at::kDouble);
  double *c_p = cell.data_ptr<double>();
  c_p[0] = h[0];
  c_p[3] = h[5];
  c_p[4] = h[1];
  c_p[6] = h[4];
  c_p[7] = h[3];
  c_p[8] = h[2];

  std::vector<int64_t> src, dst;
  std::vector<double> shifts;
  src.reserve((size_t) list->inum * 48);
  dst.reserve((size_t) list->inum * 48);
  shifts.reserve((size_t) list->inum * 48 * 3);
  for_each_edge([&](int i, int j) {
    int jl = j;
    double s0 = 0.0, s1 = 0.0, s2 = 0.0;
    if (j >= nlocal) {
      jl = atom->map(tag[j]);
      if (jl < 0 || jl >= nlocal)
        error->one(FLERR, "pair nequip/pol: ghost atom {} has no local owner", tag[j]);
      // lattice coordinates of the image shift x_j - x_jl
      double ddx = x[j][0] - x[jl][0], ddy = x[j][1] - x[jl][1], ddz = x[j][2] - x[jl][2];
      s2 = ddz / h[2];
      s1 = (ddy - s2 * h[3]) / h[1];
      s0 = (ddx - s1 * h[5] - s2 * h[4]) / h[0];
      s0 = std::round(s0);
      s1 = std::round(s1);
      s2 = std::round(s2);
    }
    src.push_back(i);
    dst.push_back(jl);
    shifts.push_back(s0);
    shifts.push_back(s1);
    shifts.push_back(s2);
  });
  int64_t nedges = (int64_t) src.size();
  at::Tensor edge_index = at::empty({2, nedges}, at::kLong);
  int64_t *e_p = edge_index.data_ptr<int64_t>();
  std::copy(src.begin(), src.end(), e_p);
  std::copy(dst.begin(), dst.end(), e_p + nedges);
  at::Tensor edge_shift = at::empty({nedges, 3}, at::kDouble);
  std::copy(shifts.begin(), shifts.end(), edge_shift.data_ptr<double>());

  inputs["pos"] = pos;
  inputs["edge_index"] = edge_index;
  inputs["atom_types"] = types;
  inputs["cell"] = cell;
  inputs["edge_cell_shift"] = edge_shift;
  return nlocal;
}
