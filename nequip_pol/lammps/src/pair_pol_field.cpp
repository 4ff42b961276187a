/* ----------------------------------------------------------------------
   nequip_pol: the electric field of the pair styles and fix efield/born.
   Parsing and evaluating "efield Ex Ey Ez" (constants, equal-style and atom-style variables)
   and the per-atom field of PairPolBase with its forward communication to the ghosts.
------------------------------------------------------------------------- */

#include "pair_pol_base.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "input.h"
#include "memory.h"
#include "modify.h"
#include "update.h"
#include "utils.h"
#include "variable.h"

#include <algorithm>

using namespace LAMMPS_NS;

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
